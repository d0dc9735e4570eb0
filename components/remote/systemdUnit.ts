/*
 * A long-running service's systemd unit: started after the network is up, restarted when it
 * exits. Values come from the program (paths, validated names), never from free text.
 */

export interface ServiceUnit {
    description: string;
    execStart: string;
    execReload?: string;
}

export function renderServiceUnit(unit: ServiceUnit): string {
    return [
        "# Managed by shortcircuit (Pulumi).",
        "[Unit]",
        `Description=${unit.description}`,
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        `ExecStart=${unit.execStart}`,
        ...(unit.execReload ? [`ExecReload=${unit.execReload}`] : []),
        "Restart=always",
        // Longer than the second between deliver-files.sh's two health looks: a daemon that
        // dies is `activating` for 2 s before its next start, so a crash-restart loop is caught
        // between the looks, never seen active twice (Litestream's unit and headscale's .deb
        // unit wait 5 s).
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}

/** A unit file's sections in order, each a list of `Key=value` lines (a key may repeat). */
export type UnitSections = ReadonlyArray<readonly [section: string, entries: ReadonlyArray<readonly [key: string, value: string]>]>;

/** Any unit or drop-in from its sections: one `Key=value` per line, a blank line between sections. */
export function renderUnitFile(sections: UnitSections): string {
    const lines = ["# Managed by shortcircuit (Pulumi)."];
    sections.forEach(([section, entries], index) => {
        if (index > 0) {
            lines.push("");
        }
        lines.push(`[${section}]`, ...entries.map(([key, value]) => `${key}=${value}`));
    });
    return `${lines.join("\n")}\n`;
}
