/**
 * The macOS (BSD) stand-ins of scripts/lab/macos outside a lab host: built once into a
 * directory with one wrapper per tool, to be put first on a PATH. They call the machine's real
 * tools in /usr/bin and log nothing (LAB_MACOS_NO_LOG). launchctl keeps its state in
 * `<dir>/state` (LAB_MACOS_STATE_DIR).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MACOS_TOOLS_SCRIPT } from "../../scripts/lab/constants";
import { buildDouble } from "../../scripts/lab/doubleBuild";
import { shQuote } from "../../scripts/lab/processes";
import { BSD_TOOLS } from "../../scripts/lab/macos/types";

export interface BsdUserland {
    /** The wrappers (one per BSD_TOOLS entry). */
    binDir: string;
    /** launchctl's state directory. */
    stateDir: string;
}

export async function buildBsdUserland(dir: string): Promise<BsdUserland> {
    const script = await buildDouble(dir, MACOS_TOOLS_SCRIPT);
    const binDir = path.join(dir, "bsd-bin");
    const stateDir = path.join(dir, "state");
    fs.mkdirSync(binDir, { recursive: true });
    fs.mkdirSync(stateDir, { recursive: true });
    for (const tool of BSD_TOOLS) {
        fs.writeFileSync(
            path.join(binDir, tool),
            [
                "#!/bin/sh",
                `# test: the macOS stand-in for ${tool} (scripts/lab/macos)`,
                "LAB_MACOS_REAL_BIN=/usr/bin LAB_MACOS_NO_LOG=1",
                `LAB_MACOS_STATE_DIR=${shQuote(stateDir)}`,
                "export LAB_MACOS_REAL_BIN LAB_MACOS_NO_LOG LAB_MACOS_STATE_DIR",
                `exec ${shQuote(process.execPath)} --disable-warning=ExperimentalWarning ${shQuote(script)} ${tool} "$@"`,
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
    }
    return { binDir, stateDir };
}
