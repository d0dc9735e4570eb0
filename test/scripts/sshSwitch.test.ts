import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { runRender } from "../../scripts/render";
import { withSshViaOverride } from "../../stacks/check";
import { formatProblem, validateFleet } from "../../stacks/validate";
import { rawFleet } from "../support/fixtures";

const repo = path.resolve(__dirname, "../..");
let home: string;
let rendered: string;

beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "sc-sshswitch-"));
    rendered = path.join(home, "render");
    expect(runRender(["--stack", "lab", "--out", rendered], new PassThrough(), new PassThrough())).toBe(0);
    fs.mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
    fs.writeFileSync(path.join(home, ".ssh/config"), `Include ${home}/.ssh/shortcircuit/active.conf\n`);
});

afterAll(() => {
    fs.rmSync(home, { recursive: true, force: true });
});

function sshSwitch(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    return spawnSync("bash", [path.join(repo, "scripts/ssh-switch.sh"), ...args], { env: { ...process.env, HOME: home }, encoding: "utf8", timeout: 20000 });
}

/** What ssh itself would connect to: `ssh -G` resolves the config without connecting. */
function resolvedHostname(host: string): string {
    const result = spawnSync("ssh", ["-G", "-F", path.join(home, ".ssh/config"), host], { encoding: "utf8", timeout: 20000 });
    if (result.status !== 0) {
        throw new Error(`ssh -G failed (is openssh-client installed? scripts/setup.sh installs it): ${result.stderr}`);
    }
    return /^hostname (.*)$/m.exec(result.stdout)?.[1] ?? "";
}

describe("switching every SSH path in one step", () => {
    it("moves ssh from Nebula to the tailnet and back, and records the path for the program", () => {
        expect(sshSwitch("nebula", rendered).status).toBe(0);
        expect(resolvedHostname("lab-agent-01")).toBe("10.68.1.21");
        expect(resolvedHostname("shortcircuit-lab-sfo3")).toBe("10.68.0.1");

        expect(sshSwitch("tailnet").status).toBe(0);
        expect(resolvedHostname("lab-agent-01")).toBe("100.68.0.21");
        expect(fs.readFileSync(path.join(home, ".ssh/shortcircuit/env"), "utf8")).toBe("export SHORTCIRCUIT_SSH_VIA=tailnet\n");

        expect(sshSwitch("lan").status).toBe(0);
        expect(resolvedHostname("lab-agent-01")).toBe("192.168.50.21");
    });

    it("refuses an unknown path and changes nothing", () => {
        expect(sshSwitch("lan").status).toBe(0);
        const result = sshSwitch("carrier-pigeon");
        expect(result.status).toBe(2);
        expect(fs.readlinkSync(path.join(home, ".ssh/shortcircuit/active.conf"))).toBe("lan.conf");
    });
});

describe("SHORTCIRCUIT_SSH_VIA", () => {
    it("overrides access.sshVia before validation", () => {
        const fleet = validateFleet(withSshViaOverride(rawFleet("lab"), "tailnet")).fleet;
        expect(fleet?.access.sshVia).toBe("tailnet");
    });

    it("is validated like the config key it overrides", () => {
        const { problems } = validateFleet(withSshViaOverride(rawFleet("lab"), "wifi"));
        expect(problems.map(formatProblem)).toEqual(['fleet.access.sshVia: Invalid option: expected one of "tailnet"|"nebula"|"lan"']);
    });
});
