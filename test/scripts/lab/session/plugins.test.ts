import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { choosePlugins } from "../../../../scripts/lab/session/plugins";

/*
 * Which command/tls/digitalocean plugins `npm run lab -- up` runs. The pulumi CLI is a stand-in
 * script here: it either fails to download, as the real CLI does offline ("failed all 5
 * attempts"), or puts the plugin where `pulumi plugin install` would.
 */

let dir: string;
const saved = { plugins: process.env.SHORTCIRCUIT_PULUMI_PLUGINS, home: process.env.PULUMI_HOME, HOME: process.env.HOME };

function fakePulumi(behaviour: "offline" | "downloads"): string {
    const bin = path.join(dir, `bin-${behaviour}`);
    fs.mkdirSync(bin, { recursive: true });
    const script =
        behaviour === "offline"
            ? '#!/bin/sh\necho "error: [resource plugin $4-$5] downloading from : failed to download plugin: $4-$5: failed all 5 attempts" >&2\nexit 255\n'
            : '#!/bin/sh\nd="$PULUMI_HOME/plugins/resource-$4-v$5"\nmkdir -p "$d" && printf x > "$d/pulumi-resource-$4" && chmod +x "$d/pulumi-resource-$4"\n';
    fs.writeFileSync(path.join(bin, "pulumi"), script, { mode: 0o755 });
    return bin;
}

function installAt(home: string, name: string, version: string): string {
    const file = path.join(home, "plugins", `resource-${name}-v${version}`, `pulumi-resource-${name}`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "x", { mode: 0o755 });
    return file;
}

beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-plugins-"));
    delete process.env.SHORTCIRCUIT_PULUMI_PLUGINS;
    process.env.PULUMI_HOME = path.join(dir, "pulumi-home");
    process.env.HOME = path.join(dir, "home");
});

afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const [key, value] of [
        ["SHORTCIRCUIT_PULUMI_PLUGINS", saved.plugins],
        ["PULUMI_HOME", saved.home],
        ["HOME", saved.HOME],
    ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
    }
});

describe("the lab command's plugin choice", () => {
    it("offline with nothing installed: all three are TEST DOUBLES, and the line says why", () => {
        const choice = choosePlugins(fakePulumi("offline"), path.join(dir, "download"), {});
        expect(choice.files).toEqual({});
        expect(choice.summary).toMatch(
            /^plugins: TEST DOUBLES \(scripts\/lab\/provider-doubles\) for command v1\.2\.1, tls v5\.6\.1, digitalocean v4\.80\.1: none installed, and the CLI could not download them \(.*failed to download plugin: command-1\.2\.1: failed all 5 attempts\)/,
        );
        expect(choice.summary).not.toContain("REAL");
    });

    it("installed ones are used (SHORTCIRCUIT_PULUMI_PLUGINS, then PULUMI_HOME at the pinned version); the rest are doubles", () => {
        const folder = path.join(dir, "real");
        fs.mkdirSync(folder);
        fs.writeFileSync(path.join(folder, "pulumi-resource-command"), "x", { mode: 0o755 });
        process.env.SHORTCIRCUIT_PULUMI_PLUGINS = folder;
        const tls = installAt(process.env.PULUMI_HOME ?? "", "tls", "5.6.1");
        installAt(process.env.PULUMI_HOME ?? "", "digitalocean", "4.79.0"); // another version: not the pin
        const choice = choosePlugins(fakePulumi("offline"), path.join(dir, "download"), {});
        expect(choice.files).toEqual({ command: path.join(folder, "pulumi-resource-command"), tls });
        expect(choice.summary).toContain("TEST DOUBLES (scripts/lab/provider-doubles) for digitalocean v4.80.1");
        expect(choice.summary).toContain(`REAL command v1.2.1 (${path.join(folder, "pulumi-resource-command")}), tls v5.6.1 (${tls})`);
    });

    it("~/.pulumi counts when PULUMI_HOME is not set", () => {
        delete process.env.PULUMI_HOME;
        const command = installAt(path.join(process.env.HOME ?? "", ".pulumi"), "command", "1.2.1");
        const choice = choosePlugins(fakePulumi("offline"), path.join(dir, "download"), {});
        expect(choice.files.command).toBe(command);
    });

    it("what the CLI can download is used, from the scratch home it downloaded into", () => {
        const download = path.join(dir, "download");
        const choice = choosePlugins(fakePulumi("downloads"), download, {});
        expect(choice.files).toEqual({
            command: path.join(download, "plugins", "resource-command-v1.2.1", "pulumi-resource-command"),
            tls: path.join(download, "plugins", "resource-tls-v5.6.1", "pulumi-resource-tls"),
            digitalocean: path.join(download, "plugins", "resource-digitalocean-v4.80.1", "pulumi-resource-digitalocean"),
        });
        expect(choice.summary).toBe("plugins: REAL command v1.2.1 (downloaded), tls v5.6.1 (downloaded), digitalocean v4.80.1 (downloaded)");
    });
});
