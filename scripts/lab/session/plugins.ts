/**
 * Which command/tls/digitalocean plugins a lab stack runs: a real plugin wherever one is
 * installed (SHORTCIRCUIT_PULUMI_PLUGINS=<dir>, or the operator's Pulumi plugin cache at the
 * version package.json pins) or the CLI can download it; otherwise the project's provider
 * doubles (scripts/lab/provider-doubles). The choice is one line the lab command prints first.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pluginPins } from "../stack/engine";

export const CHOSEN_PLUGINS = ["command", "tls", "digitalocean"] as const;
export type ChosenPlugin = (typeof CHOSEN_PLUGINS)[number];

export interface PluginChoice {
    /** The real plugin's binary, by provider; a provider not here runs its double. */
    files: Partial<Record<ChosenPlugin, string>>;
    /** One line for the top of the output. */
    summary: string;
}

function installedPlugin(name: ChosenPlugin, version: string, homes: string[]): string | undefined {
    const dir = process.env.SHORTCIRCUIT_PULUMI_PLUGINS;
    const candidates = [
        ...(dir ? [path.join(dir, `pulumi-resource-${name}`)] : []),
        ...homes.map((home) => path.join(home, "plugins", `resource-${name}-v${version}`, `pulumi-resource-${name}`)),
    ];
    return candidates.find((file) => fs.existsSync(file));
}

/**
 * `downloadHome`: a scratch PULUMI_HOME where `pulumi plugin install` may put what it downloads
 * (bounded: offline, the CLI gives up after its retries, about 3 s here).
 */
export function choosePlugins(pulumiBin: string, downloadHome: string, env: Record<string, string>): PluginChoice {
    const pins = pluginPins();
    const homes = [
        ...new Set([process.env.PULUMI_HOME, path.join(process.env.HOME ?? os.homedir(), ".pulumi")].filter((home): home is string => Boolean(home))),
    ];
    const files: PluginChoice["files"] = {};
    const real: string[] = [];
    const doubles: string[] = [];
    let downloadError = "";
    for (const name of CHOSEN_PLUGINS) {
        const installed = installedPlugin(name, pins[name], homes);
        if (installed) {
            files[name] = installed;
            real.push(`${name} v${pins[name]} (${installed})`);
            continue;
        }
        const result = spawnSync(path.join(pulumiBin, "pulumi"), ["plugin", "install", "resource", name, pins[name], "--non-interactive"], {
            env: { ...env, PULUMI_HOME: downloadHome, PULUMI_SKIP_UPDATE_CHECK: "true" },
            encoding: "utf8",
            timeout: 90_000,
        });
        const downloaded = path.join(downloadHome, "plugins", `resource-${name}-v${pins[name]}`, `pulumi-resource-${name}`);
        if (result.status === 0 && fs.existsSync(downloaded)) {
            files[name] = downloaded;
            real.push(`${name} v${pins[name]} (downloaded)`);
        } else {
            doubles.push(`${name} v${pins[name]}`);
            downloadError ||= (`${result.stderr ?? ""}${result.error ? String(result.error) : ""}`.trim().split("\n").pop() ?? "").replace(/^error: /, "");
        }
    }
    const parts = [
        ...(doubles.length > 0
            ? [
                  `TEST DOUBLES (scripts/lab/provider-doubles) for ${doubles.join(", ")}: none installed, and the CLI could not download them (${downloadError.length > 120 ? `…${downloadError.slice(-120)}` : downloadError}); README "Provider plugins" says how to install the real ones`,
              ]
            : []),
        ...(real.length > 0 ? [`REAL ${real.join(", ")}`] : []),
    ];
    const summary = `plugins: ${parts.join("; ")}`;
    return { files, summary };
}
