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
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}
