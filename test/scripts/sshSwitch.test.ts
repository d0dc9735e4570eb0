import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { runRender } from "../../scripts/render";
import { withSshViaOverride } from "../../stacks/check";
import { formatProblem, validateFleet } from "../../stacks/validate";
import { buildBsdUserland } from "../support/bsdUserland";
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

describe("on an operator's Mac (the BSD stand-ins of scripts/lab/macos first on PATH)", () => {
    let bsdBin: string;
    let macHome: string;
    const script = fs.readFileSync(path.join(repo, "scripts/ssh-switch.sh"), "utf8");

    beforeAll(async () => {
        macHome = fs.mkdtempSync(path.join(os.tmpdir(), "sc-sshswitch-mac-"));
        bsdBin = (await buildBsdUserland(path.join(macHome, "bsd"))).binDir;
        fs.mkdirSync(path.join(macHome, ".ssh"), { mode: 0o700 });
        fs.writeFileSync(path.join(macHome, ".ssh/config"), `Include ${macHome}/.ssh/shortcircuit/active.conf\n`);
    }, 60_000);

    afterAll(() => {
        fs.rmSync(macHome, { recursive: true, force: true });
    });

    function onMac(text: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
        const file = path.join(macHome, "ssh-switch.sh");
        fs.writeFileSync(file, text);
        return spawnSync("bash", [file, ...args], { env: { PATH: `${bsdBin}:/usr/bin:/bin`, HOME: macHome }, encoding: "utf8", timeout: 60_000 });
    }

    it("switches with BSD mv, ln, mktemp and install", () => {
        expect(onMac(script, "nebula", rendered)).toMatchObject({ status: 0 });
        expect(fs.readlinkSync(path.join(macHome, ".ssh/shortcircuit/active.conf"))).toBe("nebula.conf");
        expect(onMac(script, "lan")).toMatchObject({ status: 0 });
        expect(fs.readlinkSync(path.join(macHome, ".ssh/shortcircuit/active.conf"))).toBe("lan.conf");
        expect(fs.statSync(path.join(macHome, ".ssh/shortcircuit/tailnet.conf")).mode & 0o777).toBe(0o600);
    }, 60_000);

    it("would have failed there with GNU's mv -T, leaving the old link", () => {
        const newLine = 'mv -f "${tmp}" "${dir}/active.conf"';
        expect(script).toContain(newLine);
        const gnuOnly = onMac(script.replace(newLine, 'mv -T "${tmp}" "${dir}/active.conf"'), "tailnet");
        expect(gnuOnly.status).toBe(64);
        expect(gnuOnly.stderr).toContain("mv: illegal option -- T\nusage: mv [-f | -i | -n] [-hv] source target");
        expect(fs.readlinkSync(path.join(macHome, ".ssh/shortcircuit/active.conf"))).toBe("lan.conf");
    }, 60_000);

    it("refuses an active.conf that is a directory instead of moving the link into it", () => {
        const active = path.join(macHome, ".ssh/shortcircuit/active.conf");
        fs.rmSync(active);
        fs.mkdirSync(active);
        const r = onMac(script, "tailnet");
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("active.conf is a directory");
        expect(fs.readdirSync(active)).toEqual([]);
        fs.rmdirSync(active);
    }, 60_000);
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
