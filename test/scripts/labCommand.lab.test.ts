import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { runProcess, type RunResult } from "../../scripts/lab/stack/engine";

/*
 * The lab command as an operator runs it (scripts/lab.sh → scripts/labCommand.ts), on the real
 * engine: `lab up` (fleet, API server, preview, up) → status → ssh → a one-node change through
 * `lab pulumi` → `lab down`, and nothing is left: namespaces, links, processes, mounts, files.
 * Also: a keeper killed in the middle of `up` (the step is named, nothing is left), and prod's
 * shape. REAL: the engine, sshd, kube-apiserver + etcd, the program's scripts over SSH. TEST
 * DOUBLES: the command/tls/digitalocean plugins (unless real ones are installed: the first line
 * says which), k3s and the service stand-ins.
 */

const REPO = path.resolve(__dirname, "..", "..");
const LAB = path.join(REPO, "scripts", "lab.sh");
const SESSIONS = "/run/sc-lab";
const UP_MS = 15 * 60_000;
jest.setTimeout(UP_MS + 5 * 60_000);

const sha256 = (file: string): string => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function lab(args: string[], timeoutMs = UP_MS): Promise<RunResult> {
    return runProcess("bash", [LAB, ...args], { cwd: REPO, env: { ...(process.env as Record<string, string>), CI: "true" }, stdin: "", timeoutMs }).then(
        (result) => {
            // The operator's view, in the test log.
            console.log(`$ npm run lab -- ${args.join(" ")}  (exit ${result.code}, ${(result.durationMs / 1000).toFixed(1)} s)\n${result.output.slice(-3000)}`);
            return result;
        },
    );
}

function expectOk(result: RunResult): void {
    if (result.code !== 0) throw new Error(`lab exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output.slice(-6000)}`);
}

/** Processes whose command line mentions `needle`. */
function processesMentioning(needle: string): string[] {
    const found: string[] = [];
    for (const pid of fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
        try {
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
            if (cmdline.includes(needle) && Number(pid) !== process.pid) found.push(`${pid}: ${cmdline.slice(0, 160)}`);
        } catch {
            // gone meanwhile
        }
    }
    return found;
}

function run(file: string, args: string[]): string {
    return execFileSync(file, args, { encoding: "utf8" });
}

/** Running: not gone and not a zombie (this machine's pid 1 need not reap the reparented keeper at once). */
function running(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return !["Z", "X"].includes(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
    } catch {
        return false;
    }
}

/** Everything a lab run could leave on this machine, for its run id and session directory. */
function leftovers(runId: string, sessionDir: string): Record<string, string[]> {
    return {
        namespaces: run("ip", ["netns", "list"])
            .split("\n")
            .filter((line) => line.startsWith(`sc-lab-${runId}-`)),
        links: run("ip", ["-o", "link", "show"])
            .split("\n")
            .filter((line) => line.includes(`sc-br-${runId}`) || line.includes(`sc-v${runId}-`)),
        processes: [...processesMentioning(sessionDir), ...processesMentioning(`sc-lab-${runId}`), ...processesMentioning("scripts/lab/session/keeper.ts")],
        mounts: fs
            .readFileSync("/proc/mounts", "utf8")
            .split("\n")
            .filter((line) => line.includes(`sc-lab-${runId}`) || line.includes(sessionDir)),
        files: [sessionDir, path.join(SESSIONS, `sc-lab-${runId}`)].filter((file) => fs.existsSync(file)),
    };
}
/** Every lab namespace, link and run directory on this machine. */
function labThings(): string[] {
    return [
        ...run("ip", ["netns", "list"])
            .split("\n")
            .filter((line) => line.startsWith("sc-lab-"))
            .map((line) => `netns ${line.split(" ")[0]}`),
        ...run("ip", ["-o", "link", "show"])
            .split("\n")
            .map((line) => line.split(": ")[1]?.split("@")[0] ?? "")
            .filter((name) => name.startsWith("sc-br-") || name.startsWith("sc-v"))
            .map((name) => `link ${name}`),
        ...(fs.existsSync(SESSIONS) ? fs.readdirSync(SESSIONS).map((name) => `dir ${name}`) : []),
    ];
}
const NOTHING = { namespaces: [], links: [], processes: [], mounts: [], files: [] };

function sessionRecord(stack: string): { runId: string; projectDir: string; keeperPid: number; apiServerPids: { pid: number }[] } {
    return JSON.parse(fs.readFileSync(path.join(SESSIONS, `lab-${stack}`, "session.json"), "utf8")) as ReturnType<typeof sessionRecord>;
}

afterAll(async () => {
    await lab(["down", "--stack", "lab"], 180_000);
    await lab(["down", "--stack", "prod"], 180_000);
});

describe("npm run lab: the lab stack's shape", () => {
    const committed = path.join(REPO, "Pulumi.lab.yaml");
    const committedHash = sha256(committed);
    let runId = "";

    it("up: the plugins on the first line, the fleet, the real preview and up, then it keeps running", async () => {
        const result = await lab(["up"]);
        expectOk(result);
        const lines = result.stdout.split("\n");
        expect(lines[0]).toMatch(/^plugins: /);
        expect(lines[0]).toMatch(/TEST DOUBLES \(scripts\/lab\/provider-doubles\) for command v1\.2\.1, tls v5\.6\.1, digitalocean v4\.80\.1|REAL /);
        expect(result.stdout).toContain("[2/3] pulumi preview --stack lab");
        expect(result.stdout).toMatch(/\+ \d+ to create/);
        expect(result.stdout).toContain("[3/3] pulumi up --stack lab");
        expect(result.stdout).toMatch(/\+ \d+ created/);
        const wall = /lab up: stack lab is up on 5 hosts in ([\d.]+) s/.exec(result.stdout);
        expect(wall).not.toBeNull();
        console.log(`WALL TIME lab up --stack lab: ${wall?.[1]} s`);
        expect(sha256(committed)).toBe(committedHash);
        runId = sessionRecord("lab").runId;
        const status = await lab(["status"]);
        expectOk(status);
        expect(status.stdout).toMatch(new RegExp(`stack lab: running since .*, fleet run ${runId}`));
        expect(status.stdout).toContain("hosts 5/5 namespaces present");
    });

    it("ssh reaches a host by name; a second up of the same stack is refused while it runs", async () => {
        const ssh = await lab(["ssh", "lab-agent-01", "hostname"]);
        expectOk(ssh);
        expect(ssh.stdout.trim()).toBe("lab-agent-01");
        const again = await lab(["up"]);
        expect(again.code).toBe(1);
        expect(again.stderr).toContain(`lab up: failed at step "check": a lab of stack lab runs already (run ${runId}`);
        expect(sessionRecord("lab").runId).toBe(runId);
    });

    it("the next preview is a no-op; a one-node change shows in preview --diff and up changes only that node's config", async () => {
        const noop = await lab(["pulumi", "preview", "--diff"]);
        expectOk(noop);
        expect(noop.stdout).toMatch(/\d+ unchanged/);
        expect(noop.stdout).not.toMatch(/\d+ to (create|update|replace|delete)/);
        const configs = async (): Promise<Record<string, string>> => {
            const out: Record<string, string> = {};
            for (const node of ["lab-server-01", "lab-agent-01", "lab-agent-02"]) {
                const result = await lab(["ssh", node, "sha256sum /etc/rancher/k3s/config.yaml"]);
                expectOk(result);
                out[node] = result.stdout.split(" ")[0];
            }
            return out;
        };
        const before = await configs();
        const stackFile = path.join(sessionRecord("lab").projectDir, "Pulumi.lab.yaml");
        const document = parseDocument(fs.readFileSync(stackFile, "utf8"));
        expect(fs.readFileSync(stackFile, "utf8")).toMatch(/^# Derived for a lab fleet from the committed Pulumi\.lab\.yaml/);
        document.setIn(["config", "shortcircuit:fleet", "nodes", 1, "labels", "shortcircuit.lab/changed"], "yes");
        expect(document.getIn(["config", "shortcircuit:fleet", "nodes", 1, "name"])).toBe("lab-agent-01");
        fs.writeFileSync(stackFile, document.toString({ lineWidth: 0 }));
        const preview = await lab(["pulumi", "preview", "--diff"]);
        expectOk(preview);
        expect(preview.stdout).toContain("shortcircuit.lab/changed=yes");
        const up = await lab(["pulumi", "up", "--yes", "--skip-preview"]);
        expectOk(up);
        const after = await configs();
        expect(Object.keys(after).filter((node) => after[node] !== before[node])).toEqual(["lab-agent-01"]);
        expect(sha256(committed)).toBe(committedHash);
    });

    it("down removes every namespace, link, process, mount and file it made; a second down has nothing to remove", async () => {
        const { keeperPid, apiServerPids } = sessionRecord("lab");
        const down = await lab(["down", "--stack", "lab"], 180_000);
        expectOk(down);
        expect(down.stdout).toContain(`lab down: lab: removed keeper pid ${keeperPid}`);
        expect(leftovers(runId, path.join(SESSIONS, "lab-lab"))).toEqual(NOTHING);
        for (const pid of [keeperPid, ...apiServerPids.map((entry) => entry.pid)]) expect({ pid, running: running(pid) }).toEqual({ pid, running: false });
        const again = await lab(["down", "--stack", "lab"], 180_000);
        expectOk(again);
        expect(again.stdout).toContain("lab down: nothing to remove");
        const status = await lab(["status"]);
        expect(status.stdout).toContain("no lab runs");
    });

    it("a keeper killed in the middle of up: the failure names the step and nothing is left", async () => {
        const sessionDir = path.join(SESSIONS, "lab-lab");
        const child = spawn("bash", [LAB, "up"], { cwd: REPO, env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const killedRun = await new Promise<string>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "API server" step within 10 min:\n${stdout}\n${stderr}`)), 10 * 60_000);
            child.stdout.on("data", (chunk: Buffer) => {
                stdout += chunk.toString();
                if (!stdout.includes("      API server:")) return;
                clearTimeout(timer);
                // The fleet exists and said its run id; kill -9 its owner.
                const started = JSON.parse(fs.readFileSync(path.join(sessionDir, "started.json"), "utf8")) as { runId: string };
                for (const line of processesMentioning("scripts/lab/session/keeper.ts")) process.kill(Number(line.split(":")[0]), "SIGKILL");
                resolve(started.runId);
            });
        });
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        expect(code).toBe(1);
        expect(stderr).toMatch(/lab up: failed at step "(API server|stack lab)": the keeper exited \(SIGKILL\) before the lab was up/);
        expect(stderr).toContain("lab up: removed everything it had made");
        expect(leftovers(killedRun, sessionDir)).toEqual(NOTHING);
    });
});

describe("npm run lab: Ctrl-C during up", () => {
    it("the step ends, the failure says it was interrupted, and nothing is left", async () => {
        const sessionDir = path.join(SESSIONS, "lab-lab");
        const before = labThings();
        // lab.sh execs node: the child's pid is the command's, as a terminal's Ctrl-C reaches it.
        const child = spawn("bash", [LAB, "up"], { cwd: REPO, env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "lab fleet" step within 10 min:\n${stdout}\n${stderr}`)), 10 * 60_000);
            child.stdout.on("data", (chunk: Buffer) => {
                const first = !stdout.includes("      lab fleet:");
                stdout += chunk.toString();
                if (first && stdout.includes("      lab fleet:")) {
                    clearTimeout(timer);
                    child.kill("SIGINT");
                    resolve();
                }
            });
        });
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        expect(code).toBe(1);
        expect(stdout).toContain("lab up: interrupted: the current step ends, then everything made so far is removed");
        expect(stderr).toMatch(/lab up: failed at step "[^"]+": interrupted \(Ctrl-C\)/);
        // Its run id was never printed: whatever lab thing exists now existed before.
        const after = labThings();
        expect(after.filter((thing) => !before.includes(thing))).toEqual([]);
        expect(fs.existsSync(sessionDir)).toBe(false);
        expect(processesMentioning("scripts/lab/session/keeper.ts")).toEqual([]);
        expect(processesMentioning(sessionDir)).toEqual([]);
    });
});

describe("npm run lab: prod's shape", () => {
    it("up --stack prod: a lab host per prod host, a derived stack file with no committed address, the committed file untouched; down leaves nothing", async () => {
        const committed = path.join(REPO, "Pulumi.prod.yaml");
        const committedHash = sha256(committed);
        const result = await lab(["up", "--stack", "prod"]);
        expectOk(result);
        const wall = /lab up: stack prod is up on (\d+) hosts in ([\d.]+) s/.exec(result.stdout);
        expect(wall?.[1]).toBe("23");
        console.log(`WALL TIME lab up --stack prod: ${wall?.[2]} s`);
        expect(result.stdout).toContain("derived stack file: nodes[aero]: os macos → debian");
        const { runId, projectDir } = sessionRecord("prod");
        const derived = fs.readFileSync(path.join(projectDir, "Pulumi.prod.yaml"), "utf8");
        // The header names the committed ranges it replaced; the config itself holds none.
        expect(derived).toMatch(/^# Derived for a lab fleet from the committed Pulumi\.prod\.yaml/);
        expect(derived.replace(/^#.*\n/gm, "")).not.toMatch(/192\.168\./);
        expect(sha256(committed)).toBe(committedHash);
        const noop = await lab(["pulumi", "preview", "--stack", "prod"]);
        expectOk(noop);
        expect(noop.stdout).not.toMatch(/\d+ to (create|update|replace|delete)/);
        expectOk(await lab(["down", "--stack", "prod"], 180_000));
        expect(leftovers(runId, path.join(SESSIONS, "lab-prod"))).toEqual(NOTHING);
    });
});
