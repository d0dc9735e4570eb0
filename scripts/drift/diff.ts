/*
 * A unified diff of two texts (line based, longest common subsequence), for `drift --diff` on
 * public files. Planned files are small; beyond MAX_LINES a side is summarised instead.
 */

const CONTEXT = 3;
const MAX_LINES = 4000;

type Op = { kind: " " | "-" | "+"; line: string };

function splitLines(text: string): string[] {
    const lines = text.split("\n");
    if (lines.at(-1) === "") {
        lines.pop();
    }
    return lines;
}

function operations(a: string[], b: string[]): Op[] {
    const n = a.length;
    const m = b.length;
    // lcs[i][j]: length of the LCS of a[i..] and b[j..], one row of Uint32 per line of a.
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
        for (let j = m - 1; j >= 0; j--) {
            lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
        }
    }
    const ops: Op[] = [];
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
        if (a[i] === b[j]) {
            ops.push({ kind: " ", line: a[i] });
            i++;
            j++;
        } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push({ kind: "-", line: a[i++] });
        } else {
            ops.push({ kind: "+", line: b[j++] });
        }
    }
    while (i < n) ops.push({ kind: "-", line: a[i++] });
    while (j < m) ops.push({ kind: "+", line: b[j++] });
    return ops;
}

/** `--- a` / `+++ b` and hunks with three lines of context; empty when the texts are equal. */
export function unifiedDiff(before: string, after: string, labels: { before: string; after: string }): string {
    if (before === after) {
        return "";
    }
    const a = splitLines(before);
    const b = splitLines(after);
    const header = `--- ${labels.before}\n+++ ${labels.after}\n`;
    if (a.length > MAX_LINES || b.length > MAX_LINES) {
        return `${header}@@ ${a.length} lines against ${b.length} lines: too long to diff here @@\n`;
    }
    const ops = operations(a, b);
    const changed = ops.map((op, index) => (op.kind === " " ? -1 : index)).filter((index) => index >= 0);
    const hunks: string[] = [];
    let k = 0;
    while (k < changed.length) {
        let start = Math.max(0, changed[k] - CONTEXT);
        let end = Math.min(ops.length, changed[k] + CONTEXT + 1);
        while (k + 1 < changed.length && changed[k + 1] - CONTEXT <= end) {
            k++;
            end = Math.min(ops.length, changed[k] + CONTEXT + 1);
        }
        k++;
        start = Math.max(0, start);
        let aStart = 1;
        let bStart = 1;
        for (let index = 0; index < start; index++) {
            if (ops[index].kind !== "+") aStart++;
            if (ops[index].kind !== "-") bStart++;
        }
        const slice = ops.slice(start, end);
        const aCount = slice.filter((op) => op.kind !== "+").length;
        const bCount = slice.filter((op) => op.kind !== "-").length;
        const range = (from: number, count: number): string => `${count === 0 ? from - 1 : from},${count}`;
        hunks.push(`@@ -${range(aStart, aCount)} +${range(bStart, bCount)} @@\n${slice.map((op) => `${op.kind}${op.line}\n`).join("")}`);
    }
    return header + hunks.join("");
}
