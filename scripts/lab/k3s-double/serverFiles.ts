/**
 * What a started k3s leaves on the host: the kubeconfig and token files of a server, and the
 * real flannel.1 vxlan link whose parent and MTU the rollout must get right.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import * as YAML from "yaml";
import { str } from "./config";
import type { Normalised } from "./config";
import { KUBECONFIG_FILE, SERVER_DIR, STATE_DIR } from "./constants";
import { loadCue, logLine } from "./host";
import type { IfaceInfo } from "./host";
import type { DoubleHostConfig, FlannelState, K3sBehaviourCue, LabRole } from "./types";

export function nodeArgs(role: LabRole, cfg: Normalised): string[] {
    const args: string[] = [role];
    for (const [k, v] of Object.entries(cfg)) {
        if (Array.isArray(v)) for (const item of v) args.push(`--${k}`, k === "token" ? "********" : item);
        else if (typeof v === "boolean") args.push(`--${k}=${String(v)}`);
        else args.push(`--${k}`, k === "token" || k === "agent-token" ? "********" : v);
    }
    return args;
}

export function writeServerFiles(cfg: Normalised, nodeName: string): void {
    const fake = (what: string): string => Buffer.from(`k3s-test-double fake ${what} for ${nodeName}; no API server behind it\n`).toString("base64");
    const kubeconfig = {
        apiVersion: "v1",
        clusters: [{ cluster: { "certificate-authority-data": fake("CA"), server: "https://127.0.0.1:6443" }, name: "default" }],
        contexts: [{ context: { cluster: "default", user: "default" }, name: "default" }],
        "current-context": "default",
        kind: "Config",
        preferences: {},
        users: [{ name: "default", user: { "client-certificate-data": fake("client certificate"), "client-key-data": fake("client key") } }],
    };
    const target = str(cfg, "write-kubeconfig") ?? KUBECONFIG_FILE;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const real = loadCue(STATE_DIR).kubeconfig;
    fs.writeFileSync(target, real ?? "# k3s-test-double: fake kubeconfig (test double, not k3s)\n" + YAML.stringify(kubeconfig));
    fs.chmodSync(target, parseInt(str(cfg, "write-kubeconfig-mode") ?? "600", 8));
    fs.mkdirSync(SERVER_DIR, { recursive: true });
    const tokenPath = path.join(SERVER_DIR, "token");
    let token = str(cfg, "token");
    if (token === undefined) {
        const tf = str(cfg, "token-file");
        token = tf !== undefined ? fs.readFileSync(tf, "utf8").trim() : fs.existsSync(tokenPath) ? fs.readFileSync(tokenPath, "utf8").trim() : undefined;
    }
    token ??= `K10${crypto.randomBytes(32).toString("hex")}::server:${crypto.randomBytes(16).toString("hex")}`;
    fs.writeFileSync(tokenPath, token + "\n", { mode: 0o600 });
    fs.writeFileSync(path.join(SERVER_DIR, "node-token"), token + "\n", { mode: 0o600 });
}

export function flannelLink(
    host: DoubleHostConfig,
    cue: K3sBehaviourCue,
    backend: string,
    flannelIface: string | undefined,
    internalIPs: string[],
    ifaces: IfaceInfo[],
    publicIp: string | null,
): FlannelState {
    if (backend !== "vxlan") return { backend, parent: null, mtu: null, recreated: false, publicIp, note: `backend ${backend}: no flannel.1` };
    const parentInfo =
        flannelIface !== undefined
            ? ifaces.find((i) => i.name === flannelIface)
            : (ifaces.find((i) => internalIPs.some((ip) => i.ipv4.includes(ip))) ?? ifaces.find((i) => i.name === "eth0"));
    if (!parentInfo) return { backend, parent: null, mtu: null, recreated: false, publicIp, note: "no parent interface found" };
    const current = ifaces.find((i) => i.name === "flannel.1");
    const ip = (args: string[]): void => {
        execFileSync(host.ipPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    };
    try {
        let recreated = false;
        if (current && current.link !== parentInfo.name) {
            if (cue.keepStaleFlannelLink) {
                logLine(host, "warn", `flannel.1 stays on ${current.link ?? "?"} (keepStaleFlannelLink cue), wanted ${parentInfo.name}`);
                return { backend, parent: current.link, mtu: current.mtu, recreated: false, publicIp, note: "stale link kept (cue)" };
            }
            ip(["link", "del", "flannel.1"]);
            recreated = true;
        }
        if (!current || recreated) {
            const local = parentInfo.ipv4[0];
            ip([
                "link",
                "add",
                "flannel.1",
                "type",
                "vxlan",
                "id",
                "1",
                "dev",
                parentInfo.name,
                ...(local !== undefined ? ["local", local] : []),
                "dstport",
                "8472",
                "nolearning",
            ]);
            ip(["link", "set", "flannel.1", "mtu", String(parentInfo.mtu - 50), "up"]);
            logLine(host, "info", `flannel.1 ${recreated ? "recreated" : "created"} on ${parentInfo.name}, mtu ${parentInfo.mtu - 50}`);
            return { backend, parent: parentInfo.name, mtu: parentInfo.mtu - 50, recreated, publicIp };
        }
        return { backend, parent: current.link, mtu: current.mtu, recreated: false, publicIp };
    } catch (e) {
        return { backend, parent: parentInfo.name, mtu: null, recreated: false, publicIp, note: `flannel.1 not managed: ${String(e).split("\n")[0]}` };
    }
}
