/**
 * A host's files on the harness side, before anything runs: the directories its mount namespace
 * binds over /etc/rancher, /var/lib/rancher and LAB_PRIVATE_DIRS, the doubles' host config and
 * first cues, its /usr/local/bin, its sshd host key and config.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LAB_PRIVATE_DIRS, MACHINE_PRIVATE_DIRS, MACOS_PRIVATE_DIRS, SHIM_NAMES } from "./constants";
import { writeCue, writeJsonFile, writeServiceCue } from "./cues";
import type { PlannedHost } from "./hostPlan";
import { applyMissingTools, shimWrapper, SUDO_SHIM } from "./hostTools";
import type { DoubleHostConfig, LabRole } from "./k3s-double/types";
import { layOutMacosHost } from "./macos/host";
import { MACOS_BASH_ENV } from "./macos/types";
import { runOk } from "./processes";
import { sshdConfig } from "./sshd";

/** What every host of a run shares, decided once by startLabFleet. */
export interface HostLayoutContext {
    runId: string;
    runDir: string;
    clusterDir: string;
    k3sVersion: string;
    ip: string;
    sshKeygen: string;
    /** The built doubles (doubleBuild.ts) the wrappers run. */
    doubleScript: string;
    serviceDoublesScript: string;
    /** The built macOS stand-ins (only when a host is macOS-shaped). */
    macosToolsScript: string | null;
    /** Entries of this machine's /usr/local/bin, linked into each host's own. */
    origUsrLocalBin: readonly string[];
}

/** Harness-side paths of one host (see LabHost for the public ones). */
export interface HostLayout {
    role: LabRole;
    unit: string;
    etcDir: string;
    varDir: string;
    stateDir: string;
    binDir: string;
    origBin: string;
    privateDirs: Record<string, string>;
    privateList: string;
    bashrcPath: string;
}

export async function layOutHost(ctx: HostLayoutContext, h: PlannedHost): Promise<HostLayout> {
    const role = h.spec.role;
    const unit = role === "server" ? "k3s" : "k3s-agent";
    const etcDir = path.join(h.rootDir, "etc", "rancher");
    const varDir = path.join(h.rootDir, "var", "lib", "rancher");
    const stateDir = path.join(varDir, "k3s-test-double");
    const binDir = path.join(h.hostDir, "bin");
    const origBin = path.join(h.hostDir, "orig-usr-local-bin");
    for (const d of [etcDir, path.join(etcDir, "k3s"), stateDir, binDir, origBin]) fs.mkdirSync(d, { recursive: true });
    const privateDirs: Record<string, string> = { "/etc/rancher": etcDir, "/var/lib/rancher": varDir };
    const macos = h.spec.os === "macos";
    const ownDirs = [...LAB_PRIVATE_DIRS, ...(h.spec.machine === true ? MACHINE_PRIVATE_DIRS : []), ...(macos ? MACOS_PRIVATE_DIRS : [])];
    for (const d of ownDirs) {
        privateDirs[d] = path.join(h.rootDir, d);
        fs.mkdirSync(privateDirs[d], { recursive: true, mode: 0o755 });
    }
    if (h.spec.machine === true || h.spec.login !== undefined) {
        // Upper and work layers of the /etc and /root overlays (HOST_BOOT mounts them).
        for (const layer of ["etc-upper", "etc-work", "root-upper", "root-work"]) fs.mkdirSync(path.join(h.hostDir, "machine", layer), { recursive: true });
    }
    if (h.spec.login !== undefined) {
        // HOST_BOOT adds the user and its sudo rule inside the host (sshd.ts).
        // Its login shell is the OS's default one: zsh on macOS (so a step's launcher meets zsh);
        // the OS also picks the sudoers defaults (macOS's keep the login user's HOME).
        const os = h.spec.os === "macos" ? "macos" : "linux";
        fs.writeFileSync(path.join(h.hostDir, "login"), `${h.spec.login.user} ${h.spec.login.sudo} ${os === "macos" ? "/bin/zsh" : "/bin/bash"} ${os}\n`);
        fs.mkdirSync(path.join(h.hostDir, "usr-bin", "upper"), { recursive: true });
        fs.mkdirSync(path.join(h.hostDir, "usr-bin", "work"), { recursive: true });
    }
    const privateList = path.join(h.hostDir, "private-mounts.tsv");

    const hostConfigPath = path.join(h.hostDir, "double-host.json");
    const hostConfig: DoubleHostConfig = {
        runId: ctx.runId,
        hostName: h.spec.name,
        role,
        unit,
        clusterDir: ctx.clusterDir,
        hostSideStateDir: stateDir,
        k3sVersion: ctx.k3sVersion,
        ipPath: ctx.ip,
        os: macos ? "macos" : "linux",
    };
    fs.writeFileSync(hostConfigPath, JSON.stringify(hostConfig, null, 2));
    writeCue(stateDir, h.spec.k3sBehaviour ?? {});
    for (const t of ["k3s", "kubectl", "systemctl", "journalctl"]) {
        fs.writeFileSync(path.join(binDir, t), shimWrapper(t, hostConfigPath, ctx.doubleScript), { mode: 0o755 });
    }
    // A login host runs the real sudo: the shim would hand the login user root without asking.
    if (h.spec.login === undefined) fs.writeFileSync(path.join(binDir, "sudo"), SUDO_SHIM, { mode: 0o755 });
    writeJsonFile(path.join(stateDir, "tool-cue.json"), h.spec.tools ?? {});
    applyMissingTools(binDir, hostConfigPath, ctx.serviceDoublesScript, h.spec.tools?.missing ?? []);
    for (const [u, behaviour] of Object.entries(h.spec.services ?? {})) writeServiceCue(stateDir, u, behaviour);
    for (const entry of ctx.origUsrLocalBin) {
        if (!SHIM_NAMES.includes(entry)) fs.symlinkSync(path.join(origBin, entry), path.join(binDir, entry));
    }

    // A macOS-shaped host's binds (its /usr/bin among them) come after the private directories.
    let extraBinds: [string, string, string][] = [];
    if (macos) {
        if (ctx.macosToolsScript === null) throw new Error("lab fleet: the macOS stand-ins were not built");
        writeJsonFile(path.join(stateDir, "launchd-cue.json"), h.spec.launchd ?? {});
        extraBinds = layOutMacosHost({ hostDir: h.hostDir, stateDir, binDir, hostConfigPath, builtScript: ctx.macosToolsScript }).binds;
    }
    fs.writeFileSync(privateList, [...ownDirs.map((d) => `${privateDirs[d]}\t${d}\n`), ...extraBinds.map((b) => `${b.join("\t")}\n`)].join(""));

    await runOk(ctx.sshKeygen, ["-q", "-t", "ed25519", "-N", "", "-C", h.spec.name, "-f", path.join(h.hostDir, "ssh_host_ed25519_key")]);
    fs.writeFileSync(path.join(h.hostDir, "sshd_config"), sshdConfig(h, ctx.runDir));
    const bashrcPath = path.join(h.hostDir, "bashrc");
    fs.writeFileSync(
        bashrcPath,
        "# lab fleet test host: the harness machine's /root/.bashrc is hidden here\n" +
            // bash run by sshd reads ~/.bashrc and not BASH_ENV: the bash 3.2 setup comes from here too.
            (macos ? `. ${MACOS_BASH_ENV}\n` : ""),
    );
    return { role, unit, etcDir, varDir, stateDir, binDir, origBin, privateDirs, privateList, bashrcPath };
}
