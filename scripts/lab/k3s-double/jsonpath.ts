/**
 * The jsonpath subset the rollout scripts use: .field, \\. escapes, ['k'], [n], [*],
 * [?(@.a=="v")], {range ...}{end}, {"literal"}.
 */
import { fail, isRecord, unsupported } from "./util";

export type Seg =
    | { t: "field"; name: string }
    | { t: "index"; i: number }
    | { t: "all" }
    | { t: "filter"; path: Seg[]; op: "==" | "!=" | "exists"; value: string | number | boolean | null };

export function parsePath(expr: string): Seg[] {
    const segs: Seg[] = [];
    let i = 0;
    const s = expr.trim();
    if (s[0] === "$" || s[0] === "@") i = 1;
    while (i < s.length) {
        const c = s[i];
        if (c === ".") {
            if (s[i + 1] === ".") unsupported(`jsonpath recursive descent in ${JSON.stringify(expr)}`);
            i++;
            if (s[i] === "*") {
                segs.push({ t: "all" });
                i++;
                continue;
            }
            let name = "";
            while (i < s.length && s[i] !== "." && s[i] !== "[") {
                if (s[i] === "\\" && i + 1 < s.length) {
                    name += s[i + 1];
                    i += 2;
                } else name += s[i++];
            }
            if (name !== "") segs.push({ t: "field", name });
        } else if (c === "[") {
            const close = findClose(s, i);
            const inner = s.slice(i + 1, close).trim();
            i = close + 1;
            if (inner === "*") segs.push({ t: "all" });
            else if (/^-?\d+$/.test(inner)) segs.push({ t: "index", i: Number(inner) });
            else if (/^(['"]).*\1$/.test(inner)) segs.push({ t: "field", name: inner.slice(1, -1) });
            else if (inner.startsWith("?(") && inner.endsWith(")")) {
                const body = inner.slice(2, -1).trim();
                const m = /^(@[^=!<>]*?)\s*(==|!=)\s*(.+)$/.exec(body);
                if (m) {
                    const lit = (m[3] ?? "").trim();
                    let value: string | number | boolean | null;
                    if (/^(['"]).*\1$/.test(lit)) value = lit.slice(1, -1);
                    else if (lit === "true" || lit === "false") value = lit === "true";
                    else if (!Number.isNaN(Number(lit))) value = Number(lit);
                    else unsupported(`jsonpath filter literal ${lit}`);
                    segs.push({ t: "filter", path: parsePath(m[1] ?? "@"), op: m[2] === "==" ? "==" : "!=", value });
                } else if (/^@[\w.\\/-]*$/.test(body)) segs.push({ t: "filter", path: parsePath(body), op: "exists", value: null });
                else unsupported(`jsonpath filter ${JSON.stringify(body)}`);
            } else unsupported(`jsonpath subscript [${inner}]`);
        } else if (c === " ") {
            i++;
        } else {
            unsupported(`jsonpath expression ${JSON.stringify(expr)}`);
        }
    }
    return segs;
}

export function findClose(s: string, open: number): number {
    let depth = 0;
    let quote: string | null = null;
    for (let i = open; i < s.length; i++) {
        const c = s[i];
        if (quote !== null) {
            if (c === quote) quote = null;
        } else if (c === "'" || c === '"') quote = c;
        else if (c === "[" || c === "{") depth++;
        else if (c === "]" || c === "}") {
            depth--;
            if (depth === 0) return i;
        }
    }
    return fail(1, `error: error parsing jsonpath ${s}, unclosed bracket`);
}

export function evalPath(segs: Seg[], roots: unknown[]): unknown[] {
    let cur = roots;
    for (const seg of segs) {
        const next: unknown[] = [];
        for (const v of cur) {
            if (seg.t === "field") {
                if (isRecord(v) && seg.name in v) next.push(v[seg.name]);
            } else if (seg.t === "index") {
                if (Array.isArray(v)) {
                    const idx = seg.i < 0 ? v.length + seg.i : seg.i;
                    if (idx >= 0 && idx < v.length) next.push(v[idx]);
                }
            } else if (seg.t === "all") {
                if (Array.isArray(v)) next.push(...(v as unknown[]));
                else if (isRecord(v)) next.push(...Object.values(v));
            } else {
                const items: unknown[] = Array.isArray(v) ? (v as unknown[]) : [v];
                for (const item of items) {
                    const got = evalPath(seg.path, [item]);
                    if (seg.op === "exists" ? got.length > 0 : got.some((g) => g === seg.value) === (seg.op === "==")) next.push(item);
                }
            }
        }
        cur = next;
    }
    return cur;
}

export function fmt(v: unknown): string {
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    return JSON.stringify(v);
}

export function unescapeLiteral(s: string): string {
    return s.replace(/\\([ntr\\"'])/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c === "r" ? "\r" : c));
}

export function jsonpath(template: string, data: unknown): string {
    // Split into literal text and {expressions}.
    const parts: ({ lit: string } | { expr: string })[] = [];
    let i = 0;
    let text = "";
    while (i < template.length) {
        if (template[i] === "{") {
            if (text !== "") parts.push({ lit: text });
            text = "";
            const close = findClose(template, i);
            parts.push({ expr: template.slice(i + 1, close).trim() });
            i = close + 1;
        } else text += template[i++];
    }
    if (text !== "") parts.push({ lit: text });

    const render = (from: number, ctx: unknown, root: unknown): { text: string; end: number } => {
        let result = "";
        for (let p = from; p < parts.length; p++) {
            const part = parts[p];
            if (part === undefined) break;
            if ("lit" in part) {
                result += part.lit;
                continue;
            }
            const expr = part.expr;
            if (expr === "end") return { text: result, end: p };
            if (expr.startsWith("range ")) {
                const items = evalPath(parsePath(expr.slice(6)), [expr.slice(6).trim().startsWith("@") ? ctx : root]);
                const flat = items.length === 1 && Array.isArray(items[0]) ? (items[0] as unknown[]) : items;
                let end = parts.length;
                // find the matching end by rendering once with no items if needed
                if (flat.length === 0) {
                    end = render(p + 1, null, root).end;
                }
                for (const item of flat) {
                    const r = render(p + 1, item, root);
                    result += r.text;
                    end = r.end;
                }
                p = end;
                continue;
            }
            if (/^(['"]).*\1$/s.test(expr)) {
                result += unescapeLiteral(expr.slice(1, -1));
                continue;
            }
            const startsAtCtx = expr.startsWith("@");
            const values = evalPath(parsePath(expr), [startsAtCtx ? ctx : expr.startsWith("$") ? root : ctx]);
            result += values.map(fmt).join(" ");
        }
        return { text: result, end: parts.length };
    };
    return render(0, data, data).text;
}
