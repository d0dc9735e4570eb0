import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HEADSCALE_FILES, renderDerpMapYaml, renderHeadscaleConfigYaml, renderHeadscalePolicy } from "../../../components/control/headscale";
import { validFleet } from "../../support/fixtures";
import { machineHasGo, tailnetTool } from "../../support/tools";

/*
 * The pinned headscale, built from the Go module proxy, checks the configuration the program
 * renders. Only the file paths move into a temp dir; everything else is as deployed.
 */

const describeWithGo = machineHasGo() ? describe : describe.skip;
if (!machineHasGo()) {
    console.warn("headscale configtest skipped: this machine has no Go toolchain to build headscale with");
}

interface Rendered {
    dir: string;
    config: string;
}

function renderInto(stack: "lab" | "prod", keys: { noise: string; derp: string }): Rendered {
    const fleet = validFleet(stack);
    const dir = mkdtempSync(join(tmpdir(), "sc-headscale-"));
    const paths: Record<keyof typeof HEADSCALE_FILES, string> = {
        config: join(dir, "config.yaml"),
        derpMap: join(dir, "derp.yaml"),
        policy: join(dir, "policy.hujson"),
        noiseKey: join(dir, "noise_private.key"),
        derpKey: join(dir, "derp_server_private.key"),
        database: join(dir, "db.sqlite"),
        acmeCache: join(dir, "cache"),
        socket: join(dir, "headscale.sock"),
    };
    writeFileSync(paths.config, renderHeadscaleConfigYaml(fleet, { paths }));
    writeFileSync(paths.derpMap, renderDerpMapYaml(fleet));
    writeFileSync(paths.policy, renderHeadscalePolicy());
    writeFileSync(paths.noiseKey, `${keys.noise}\n`, { mode: 0o600 });
    writeFileSync(paths.derpKey, `${keys.derp}\n`, { mode: 0o600 });
    return { dir, config: paths.config };
}

function configtest(config: string): { status: number | null; output: string } {
    const result = spawnSync(tailnetTool("headscale"), ["configtest", "-c", config], { encoding: "utf8", timeout: 60000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const keys = { noise: `privkey:${"1a".repeat(32)}`, derp: `privkey:${"2b".repeat(32)}` };

describeWithGo("headscale configtest on the rendered configuration", () => {
    const made: string[] = [];
    afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

    it.each(["lab", "prod"] as const)("passes for the %s stack, with no deprecated or removed key", (stack) => {
        const rendered = renderInto(stack, keys);
        made.push(rendered.dir);
        const result = configtest(rendered.config);
        expect(result.output).not.toMatch(/FTL|FATAL|deprecated|removed/);
        expect(result.status).toBe(0);
    });

    it("fails when the noise and DERP keys are the same (the tool really checks)", () => {
        const rendered = renderInto("lab", { noise: keys.noise, derp: keys.noise });
        made.push(rendered.dir);
        const result = configtest(rendered.config);
        expect(result.status).not.toBe(0);
        expect(result.output).toContain("DERP server private key and noise private key are the same");
    });
});
