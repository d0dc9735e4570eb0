import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PROJECT_ROOT } from "../../stacks/stackFile";

/*
 * The operator's docs hold together: every relative link in README.md and docs/**\/*.md leads to
 * a file that exists (and, with a #fragment, to one of its headings), every page under docs/ is
 * reachable from the README, the README stays short, and the lighthouse rebuild runbook is one
 * click from its top.
 */

interface Link {
    readonly file: string;
    readonly line: number;
    readonly target: string;
}

/** Markdown files of the docs: README.md and everything under docs/. */
function docFiles(root: string): string[] {
    const found: string[] = [];
    const walk = (dir: string): void => {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
            const full = path.join(dir, entry.name);
            if (entry.isDirectory()) walk(full);
            else if (entry.name.endsWith(".md")) found.push(full);
        }
    };
    if (fs.existsSync(path.join(root, "docs"))) walk(path.join(root, "docs"));
    return [path.join(root, "README.md"), ...found.sort()];
}

/** Lines outside fenced code blocks, with inline code removed (a link inside code is text). */
function proseLines(text: string): [number, string][] {
    const lines: [number, string][] = [];
    let fenced = false;
    text.split("\n").forEach((line, index) => {
        if (line.startsWith("```")) {
            fenced = !fenced;
            return;
        }
        if (!fenced) lines.push([index + 1, line.replace(/`[^`]*`/g, "")]);
    });
    return lines;
}

function links(file: string): Link[] {
    const found: Link[] = [];
    for (const [line, text] of proseLines(fs.readFileSync(file, "utf8"))) {
        for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) found.push({ file, line, target });
    }
    return found;
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(file: string): Set<string> {
    const seen = new Map<string, number>();
    const result = new Set<string>();
    for (const [, line] of proseLines(fs.readFileSync(file, "utf8").replace(/`/g, ""))) {
        const heading = /^#{1,6} (.+)$/.exec(line)?.[1];
        if (heading === undefined) continue;
        const slug = heading
            .trim()
            .toLowerCase()
            .replace(/[^a-z0-9 _-]/g, "")
            .replace(/ /g, "-");
        const count = seen.get(slug) ?? 0;
        seen.set(slug, count + 1);
        result.add(count === 0 ? slug : `${slug}-${count}`);
    }
    return result;
}

/** Every relative link that does not resolve, as `<file>:<line>: <target>`. */
function brokenLinks(root: string): string[] {
    const broken: string[] = [];
    for (const file of docFiles(root)) {
        for (const link of links(file)) {
            if (/^[a-z]+:/i.test(link.target)) continue; // https:, mailto:
            const [relative, fragment] = link.target.split("#", 2) as [string, string | undefined];
            const resolved = relative === "" ? file : path.resolve(path.dirname(file), relative);
            const where = `${path.relative(root, file)}:${link.line}: ${link.target}`;
            if (!fs.existsSync(resolved)) broken.push(where);
            else if (fragment !== undefined && (!resolved.endsWith(".md") || !anchors(resolved).has(fragment))) broken.push(where);
        }
    }
    return broken;
}

/** The docs pages a reader reaches from README.md by following relative links. */
function reachable(root: string): Set<string> {
    const seen = new Set<string>();
    const queue = [path.join(root, "README.md")];
    while (queue.length > 0) {
        const file = queue.pop()!;
        if (seen.has(file) || !fs.existsSync(file) || !file.endsWith(".md")) continue;
        seen.add(file);
        for (const link of links(file)) {
            if (/^[a-z]+:/i.test(link.target)) continue;
            const relative = link.target.split("#", 1)[0];
            if (relative !== "") queue.push(path.resolve(path.dirname(file), relative));
        }
    }
    return seen;
}

describe("the operator's docs", () => {
    it("every relative link in README.md and docs/ leads to an existing file and heading", () => {
        const all = docFiles(PROJECT_ROOT).flatMap(links);
        expect(all.length).toBeGreaterThan(40);
        expect(brokenLinks(PROJECT_ROOT)).toEqual([]);
    });

    it("every page under docs/ is reachable from README.md", () => {
        const seen = reachable(PROJECT_ROOT);
        const unreached = docFiles(PROJECT_ROOT).filter((file) => !seen.has(file));
        expect(unreached.map((file) => path.relative(PROJECT_ROOT, file))).toEqual([]);
    });

    it("the README stays short and puts the lighthouse rebuild runbook one click from its top", () => {
        const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8").split("\n");
        expect(readme.length).toBeLessThanOrEqual(200);
        expect(readme.slice(0, 20).join("\n")).toContain("](docs/runbooks/rebuilding-a-lighthouse.md)");
    });

    it("the check refuses a missing file, a missing heading and a link to an unknown anchor, and ignores code", () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "sc-docs-links-"));
        try {
            fs.mkdirSync(path.join(root, "docs", "runbooks"), { recursive: true });
            fs.writeFileSync(path.join(root, "docs", "runbooks", "a.md"), "# A `page`\n\n## Step one: go\n\n## Step one: go\n");
            fs.writeFileSync(
                path.join(root, "README.md"),
                [
                    "[ok](docs/runbooks/a.md#a-page) [ok](docs/runbooks/a.md#step-one-go-1) [web](https://example.com/x)",
                    "[gone](docs/runbooks/missing.md) [bad anchor](docs/runbooks/a.md#step-two)",
                    "`[in code](nowhere.md)`",
                    "```",
                    "[in a fence](nowhere.md)",
                    "```",
                    "[here](#nothing)",
                ].join("\n"),
            );
            expect(brokenLinks(root)).toEqual(["README.md:2: docs/runbooks/missing.md", "README.md:2: docs/runbooks/a.md#step-two", "README.md:7: #nothing"]);
            expect([...reachable(root)].map((file) => path.relative(root, file)).sort()).toEqual(["README.md", "docs/runbooks/a.md"]);
        } finally {
            fs.rmSync(root, { recursive: true, force: true });
        }
    });
});
