/**
 * k3s double (k3s-test-double in its output) — a TEST DOUBLE that plays k3s on the lab
 * fleet's test hosts (see ../index.ts). It is NOT k3s: no kubelet, no API server, no etcd, no pods.
 * It exists so the project's exact remote scripts can run over real SSH against hosts
 * that answer like k3s nodes do.
 *
 * Run by node through per-host wrappers that the harness puts first in the host's PATH
 * (bind-mounted over /usr/local/bin) and over /usr/bin/systemctl and /usr/bin/journalctl in
 * the host's mount namespace. The harness strips the types of this file and every module it
 * imports once per run (node:module stripTypeScriptTypes, ../doubleBuild.ts) into
 * <runDir>/k3s-double/*.mjs. Keep to erasable TypeScript (no enums, namespaces, parameter
 * properties), node built-ins and `yaml`, and `import type` for types (a type imported as a
 * value would be a missing export at run time).
 *
 * Modules: this file (entry: the `k3s` tool and the dispatch), types.ts (shared with the
 * harness), constants.ts (paths, k3s's flag names), util.ts (output, exit codes, JSON and
 * locks), host.ts (host config, state, cue, interfaces), nodes.ts (the shared cluster
 * registry, readiness), config.ts (config.yaml loading and validation), unit.ts (start/stop),
 * start.ts (what a start checks and records), serverFiles.ts (kubeconfig, tokens, flannel.1),
 * serviceManager.ts + serviceVerbs.ts (the stand-in for every other unit), systemctl.ts
 * (systemctl/journalctl shims), kubectlArgs.ts + kubectl.ts + kubectlVerbs.ts, jsonpath.ts.
 *
 *   k3s ...         -> `k3s` tool: --version, kubectl (below); `k3s server|agent` is refused
 *   kubectl ...     -> same as `k3s kubectl ...` (k3s installs kubectl as a symlink)
 *   systemctl ...   -> systemctl shim for the units k3s (server hosts) / k3s-agent (agent hosts),
 *                      and a service-manager stand-in for every other unit (below)
 *   journalctl ...  -> prints the double's log for those units
 *
 * Each wrapper sets K3S_TEST_DOUBLE_HOST_CONFIG to a JSON file written by the harness
 * (host name, role, shared cluster dir) and execs
 *   node k3s-double.mjs <tool> <args...>
 *
 * Per host state (inside the host's view; host side: <rootDir>/var/lib/rancher/k3s-test-double):
 *   state.json        unit status (active|inactive|failed), merged config last loaded, config
 *                     files with sha256, restart/start/failure counts, history, last error,
 *                     node name, certificate SANs, flannel.1 handling
 *   cue.json          behaviour cue written by the harness (readyDelayMs, neverReady,
 *                     failOnStart, etcdUnhealthy, keepStaleFlannelLink)
 *   invocations.log   one JSON line per invocation of any tool (argv, exit code, output head)
 *   k3s.log           journal-like log, shown by the journalctl shim and `systemctl status`
 *   services.json     service-manager stand-in: per unit state and every call (ServiceEvent:
 *                     unit, verb, Date.now() and CLOCK_MONOTONIC µs, exit code, resulting state)
 *   service-cue.json  per unit cues written by the harness (failRestarts, exitAtStart, exitAfterMs)
 *   services.log      journal lines of those units (journalctl -u, systemctl status)
 *
 * Service-manager stand-in (TEST DOUBLE, not systemd; nothing is executed, ExecStart never
 * runs): any unit other than k3s/k3s-agent exists when its file is in the host's (private)
 * /etc/systemd/system ("nebula" means "nebula.service"). daemon-reload; start, restart,
 * try-restart, reload-or-restart, reload, stop (several units per call, the first error's exit
 * code, like systemctl); enable/disable [--now] [--no-reload] (without it, a reload of the manager
 * as systemctl does after them); is-active/is-failed/is-enabled [--quiet] with
 * systemd's words and exit codes (is-active: 0 active, 3 otherwise); status (0/3, 4 unknown);
 * show [-p P,...] [--value] with ActiveState, SubState, Result, LoadState, UnitFileState,
 * NeedDaemonReload, ActiveEnterTimestamp(Monotonic), InactiveEnterTimestamp(Monotonic),
 * ExecMainStartTimestamp(Monotonic), NRestarts (always 0: no automatic restarts happen);
 * reset-failed. Start/restart of a unit without a unit file: "Failed to restart x.service:
 * Unit x.service not found.", exit 5. Cues: failRestarts n (the next n start attempts exit 1,
 * unit failed), exitAtStart (start exits 0, the unit reads failed exitAfterMs later, as when a
 * daemon dies at once under a unit without Type=). A unit file edited after it was loaded
 * (daemon-reload or first use) draws systemd's "changed on disk" warning on start.
 *
 * Cluster state (TEST DOUBLE SHORTCUT): every host of a fleet reads and writes one shared
 * directory on the harness side (clusterDir/nodes/<node>.json). It is visible at the same
 * path in every host's mount namespace, so `k3s kubectl` on the genesis server sees the
 * other nodes, as a real API server would. Node readiness is computed when asked, from the
 * owning host's state.json and cue.json: no daemon runs.
 *
 * On `systemctl start|restart <unit>` the double reads /etc/rancher/k3s/config.yaml and then
 * /etc/rancher/k3s/config.yaml.d/*.yaml in lexical order (later files override keys; a key
 * written `key+:` appends to a list key) and refuses to start (unit `failed`, systemctl exits
 * 1 with systemd's message) when:
 *   - a key is not a k3s flag name for the host's role (agents refuse server-only keys such
 *     as tls-san, cluster-init, etcd-arg, cluster-cidr, disable, write-kubeconfig-mode);
 *     deliberately strict: the project's renderer must produce only valid keys
 *   - a value has the wrong type (bool keys take booleans, list keys a scalar or a list of
 *     scalars, string keys a scalar); the YAML does not parse or is not a mapping
 *   - node-ip is not an address on one of the host's interfaces (kubelet's check), a
 *     node-ip/node-external-ip is not an IP, cluster-cidr/service-cidr is not a CIDR
 *   - flannel-iface names a missing interface; flannel-backend is not a known backend
 *   - an agent has no `server`, a joining node (server: set) has no token/token-file,
 *     token-file does not exist
 *   - a joining server's critical values (cluster-cidr, service-cidr, cluster-dns,
 *     cluster-domain, flannel-backend, disable, ...) differ from the server it joins
 *     ("critical configuration value mismatch"); the server is found by matching the
 *     `server:` URL host against registered nodes' addresses; if none matches, the double
 *     only logs a warning
 *   - cue.json has failOnStart set
 * Started, it registers/updates the node (labels and taints from node-label/node-taint only
 * at first registration, like k3s), sets the annotations k3s/flannel set
 * (flannel.alpha.coreos.com/public-ip = non-empty public-ip-overwrite, else flannel-iface's
 * IPv4, else the internal IP), writes a fake kubeconfig /etc/rancher/k3s/k3s.yaml (servers; the
 * `kubeconfig` cue replaces it with a real one),
 * the server token files, tracks certificate SANs (added SANs apply on restart; removed ones
 * only when /var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate exists, which it deletes)
 * and, for the vxlan backend, keeps a real `flannel.1` vxlan link on the parent interface
 * with MTU = parent MTU - 50 (recreated when the parent changes unless keepStaleFlannelLink).
 *
 * `systemctl start|restart` returns as soon as the config is accepted (like a Type=exec
 * unit); it does not block for the ready delay, so callers wait for readiness themselves.
 *
 * Readiness: Ready=True once the unit is active, cue.neverReady is false and readyDelayMs
 * has passed since the last start; False while starting or neverReady; Unknown when the
 * unit is stopped or failed. The cue is read at query time.
 *
 * kubectl (only on server hosts whose unit is active; otherwise "connection refused"):
 *   get node|nodes|no [NAME...] | get node/NAME   -o json|yaml|name|wide|jsonpath=TEMPLATE,
 *       --no-headers, --ignore-not-found (a missing named node prints nothing, exit 0); jsonpath subset: .field, \. escapes, ['k'], [n], [*], [?(@.a=="v")],
 *       {range ...}{end}, {"literal"}
 *   wait --for=condition=Ready[=true|false] node/NAME [--timeout=30s]
 *   cordon|uncordon NAME; drain NAME --ignore-daemonsets [--delete-emptydir-data --force
 *       --timeout=... --grace-period=...]   (drain without --ignore-daemonsets fails: the
 *       double assumes DaemonSet pods such as svclb-traefik on every node)
 *   annotate|label node NAME k=v... k- [--overwrite]
 *   delete node NAME
 *   get --raw /healthz/etcd (also /readyz/etcd, /livez/etcd, /healthz, /readyz, /livez):
 *       the etcd health query. "ok" when this server is up (active, past its ready delay,
 *       not neverReady, not etcdUnhealthy) and a quorum of the etcd members (servers started
 *       with cluster-init or joined with server:) is up; otherwise the apiserver's
 *       InternalServerError text and exit 1.
 * Anything else exits 64 with "k3s-test-double: unsupported ..." so a test author knows
 * to extend the double rather than chase a phantom bug.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { STATE_DIR } from "./constants";
import { loadHost } from "./host";
import { kubectl } from "./kubectl";
import { journalctl, systemctl } from "./systemctl";
import type { DoubleHostConfig, InvocationRecord } from "./types";
import { ToolExit, complain, err, fail, out, say, unsupported } from "./util";

// The `k3s` tool itself, and the dispatch of every tool.

export function k3s(host: DoubleHostConfig, argv: string[]): number {
    const [cmd, ...rest] = argv;
    switch (cmd) {
        case "--version":
        case "-v":
        case "version":
            say(`k3s version ${host.k3sVersion} (k3s-test-double)`);
            say("go version go1.22.0 (k3s-test-double, not k3s)");
            return 0;
        case "kubectl":
            return kubectl(host, rest);
        case "server":
        case "agent":
            return fail(2, `k3s-test-double: '${cmd}' is started through the systemctl shim (systemctl restart ${host.unit}), not run directly`);
        default:
            return unsupported(`k3s subcommand ${JSON.stringify(cmd ?? "")}`);
    }
}

export function main(): void {
    const started = Date.now();
    const tool = process.argv[2] ?? "";
    const argv = process.argv.slice(3);
    let code = 0;
    let host: DoubleHostConfig | null = null;
    try {
        host = loadHost();
        switch (tool) {
            case "k3s":
                code = k3s(host, argv);
                break;
            case "kubectl":
                code = kubectl(host, argv);
                break;
            case "systemctl":
                code = systemctl(host, argv);
                break;
            case "journalctl":
                code = journalctl(host, argv);
                break;
            default:
                code = unsupported(`tool ${JSON.stringify(tool)}`);
        }
    } catch (e) {
        if (e instanceof ToolExit) {
            code = e.code;
            complain(e.message);
        } else {
            code = 70;
            complain(`k3s-test-double: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
    }
    const stdout = out.join("");
    const stderr = err.join("");
    if (host !== null) {
        const rec: InvocationRecord = {
            at: new Date(started).toISOString(),
            tool,
            argv,
            exitCode: code,
            durationMs: Date.now() - started,
            stdoutHead: stdout.slice(0, 2000),
            stderrHead: stderr.slice(0, 2000),
        };
        try {
            fs.mkdirSync(STATE_DIR, { recursive: true });
            fs.appendFileSync(path.join(STATE_DIR, "invocations.log"), JSON.stringify(rec) + "\n");
        } catch {
            // a read-only or missing state dir must not change the tool's answer
        }
    }
    process.stdout.write(stdout);
    process.stderr.write(stderr);
    process.exitCode = code;
}

main();
