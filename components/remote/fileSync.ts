/*
 * Delivering files to a host over SSH. The script is fixed text (a pure function of the
 * service it restarts); the files travel on stdin, one line each: `<path> <octal mode>
 * <base64 content>`, so no content is ever spliced into a shell string. Each file is
 * written to a temp file beside its target and renamed into place; the previous version is
 * kept as `<path>.previous`; unchanged files are not touched, and the service restarts only
 * when something changed.
 */

export interface DeliveredFile {
    path: string;
    content: string;
    /** Octal permission bits, e.g. 0o600 for keys. */
    mode: number;
}

export type ServiceRestart =
    | { manager: "systemd"; unit: string }
    /** `plist`: a job file this delivery manages, loaded (bootstrapped) before the restart. */
    | { manager: "launchd"; label: string; plist?: string }
    | { manager: "none" };

export function fileSyncPayload(files: readonly DeliveredFile[]): string {
    return files
        .map((file) => {
            if (!file.path.startsWith("/") || /\s/.test(file.path)) {
                throw new Error(`delivered file path must be absolute and contain no whitespace: ${JSON.stringify(file.path)}`);
            }
            return `${file.path} ${file.mode.toString(8).padStart(4, "0")} ${Buffer.from(file.content, "utf8").toString("base64")}\n`;
        })
        .join("");
}

function restartCommand(restart: ServiceRestart): string {
    switch (restart.manager) {
        case "systemd":
            return `systemctl daemon-reload\n  systemctl enable ${restart.unit} >/dev/null 2>&1 || true\n  systemctl restart ${restart.unit}`;
        case "launchd":
            return restart.plist
                ? `launchctl bootstrap system ${restart.plist} 2>/dev/null || true\n  launchctl kickstart -k system/${restart.label}`
                : `launchctl kickstart -k system/${restart.label}`;
        case "none":
            return ":";
    }
}

const UNIT_NAME = /^[A-Za-z0-9@._-]+$/;

export function fileSyncScript(restart: ServiceRestart): string {
    const name = restart.manager === "systemd" ? restart.unit : restart.manager === "launchd" ? restart.label : "";
    if (restart.manager !== "none" && !UNIT_NAME.test(name)) {
        throw new Error(`service name ${JSON.stringify(name)} has characters a unit name cannot`);
    }
    return `set -euo pipefail
umask 077
changed=0
while IFS=' ' read -r path mode content; do
  [ -n "$path" ] || continue
  mkdir -p "$(dirname "$path")"
  tmp="$(mktemp "$path.shortcircuit.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  printf '%s' "$content" | base64 -d > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    continue
  fi
  if [ -f "$path" ]; then
    cp -p "$path" "$path.previous"
  fi
  mv -f "$tmp" "$path"
  trap - EXIT
  changed=1
  echo "shortcircuit: wrote $path"
done
if [ "$changed" = 1 ]; then
  ${restartCommand(restart)}
  echo "shortcircuit: restarted ${name || "nothing"}"
else
  echo "shortcircuit: no change"
fi
`;
}
