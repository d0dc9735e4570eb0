import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { isHostPath, parsePayload } from "../components/remote/payload";
import { runRender } from "../scripts/render";
import { rawFleet } from "./support/fixtures";
import { runProgramUnderMocks, stepPayload } from "./support/pulumiMocks";

/*
 * One plan, two outputs: every (host, path, mode) the program delivers over SSH is exactly
 * what `render` writes under hosts/, for both committed stacks.
 */

const componentHost: [RegExp, (match: RegExpExecArray, controlName: string) => string][] = [
    [/^(?:nebula|derp|k3s)-(.+)$/, (match) => match[1]],
    [/^control$/, (_match, controlName) => controlName],
];

async function programDeliveries(stack: "prod" | "lab", controlName: string): Promise<string[]> {
    const run = await runProgramUnderMocks({ stack }, rawFleet(stack));
    expect(run.error).toBeUndefined();
    const entries: string[] = [];
    for (const command of run.recorder.ofType("command:remote:Command")) {
        const files = parsePayload(stepPayload(command.inputs)).files.filter((each) => isHostPath(each.target));
        if (files.length === 0) {
            continue;
        }
        const parent = command.parent ?? "";
        const rule = componentHost.find(([pattern]) => pattern.test(parent));
        if (!rule) {
            throw new Error(`${command.name}: no host for its component ${parent}`);
        }
        const host = rule[1](rule[0].exec(parent) as RegExpExecArray, controlName);
        for (const file of files) {
            entries.push(`${host} ${file.target} ${file.mode.toString(8)}`);
        }
    }
    return [...new Set(entries)].sort();
}

function renderedHostFiles(stack: "prod" | "lab"): { entries: string[]; controlName: string } {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sc-plan-"));
    try {
        const target = path.join(out, "tree");
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        expect(runRender(["--stack", stack, "--out", target], stdout, stderr)).toBe(0);
        const hostsDir = path.join(target, "hosts");
        const entries: string[] = [];
        let controlName = "";
        for (const entry of fs.readdirSync(hostsDir, { recursive: true, withFileTypes: true })) {
            if (!entry.isFile()) {
                continue;
            }
            const relative = path.relative(hostsDir, path.join(entry.parentPath, entry.name));
            const [host, ...rest] = relative.split(path.sep);
            if (rest.join("/") === "cloud-init.yaml") {
                controlName = host;
                continue;
            }
            entries.push(`${host} /${rest.join("/")} ${(fs.statSync(path.join(hostsDir, relative)).mode & 0o777).toString(8)}`);
        }
        return { entries: entries.sort(), controlName };
    } finally {
        fs.rmSync(out, { recursive: true, force: true });
    }
}

describe("the program and render deliver the same plan", () => {
    it.each(["prod", "lab"] as const)("%s: every (host, path, mode) delivered over SSH is rendered, and nothing else", async (stack) => {
        const rendered = renderedHostFiles(stack);
        // Workstations get their Nebula files from render by hand; no SSH step reaches them.
        const workstations = new Set(
            (rawFleet(stack) as { overlays: { nebula: { admins?: { name: string }[] } } }).overlays.nebula.admins?.map((admin) => admin.name),
        );
        const controlName = rendered.controlName || (rawFleet(stack) as { controlServer: { host: { host: string } } }).controlServer.host.host;
        const expected = rendered.entries.filter((entry) => !workstations.has(entry.split(" ")[0]));
        const delivered = await programDeliveries(stack, controlName);
        expect(delivered.length).toBeGreaterThan(20);
        expect(delivered).toEqual(expected);
    });
});
