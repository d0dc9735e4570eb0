/**
 * The macOS-shaped lab host (LabHostSpec.os "macos"; root, network namespaces,
 * openssh-server): over real SSH its userland is the BSD stand-ins (GNU-only options refused,
 * GNU-only tools absent), its bash sessions are set up as 3.2, launchctl keeps launchd's
 * system-domain rules and really runs a job's ProgramArguments, the file delivery step's launchd
 * branch and drift's collector work there, and a Linux host beside it is unchanged. Waits are
 * bounded in time and count; nothing is asserted on wall-clock races.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { build as buildPlist } from "plist";
import { framedPayload } from "../../../../components/remote/payload";
import { stepLauncher, stepStdin } from "../../../../components/remote/remoteCommand";
import { remoteScript, scriptFile } from "../../../../components/remote/scripts";
import { checkLabPrerequisites, startLabFleet, type ExecResult, type LabFleet } from "../../../../scripts/lab";
import { collectorScript } from "../../../../scripts/drift/run";
import { parseCollectorOutput } from "../../../../scripts/drift/observe";

jest.setTimeout(180_000);

const MAC = "aero";
const LINUX = "lnx-01";
const LABEL = "io.kub0.lab-sleeper";
const PLIST_PATH = `/Library/LaunchDaemons/${LABEL}.plist`;
const PROGRAM = "/usr/local/sbin/lab-sleeper";
const PROGRAM_TEXT = "#!/bin/sh\n# lab test daemon\nwhile :; do sleep 1; done\n";
const NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups";
/** Waits (5 s at most) until pid $1 is gone or a zombie, then prints gone or alive. */
const GONE = (pid: number): string =>
    `for i in $(seq 1 100); do s="$(cut -d' ' -f3 /proc/${pid}/stat 2>/dev/null || true)"; if [ -z "$s" ] || [ "$s" = Z ]; then echo gone; exit 0; fi; sleep 0.05; done; echo alive`;

function plistText(label: string, program: string, keepAlive: boolean): string {
    return buildPlist({ Label: label, ProgramArguments: [program, "--lab"], RunAtLoad: true, KeepAlive: keepAlive });
}

describe("the macOS-shaped lab host", () => {
    let fleet: LabFleet | undefined;

    beforeAll(async () => {
        const problems = checkLabPrerequisites();
        if (problems.length > 0) throw new Error(`lab fleet prerequisites missing: ${problems.join("; ")}; run scripts/setup.sh as root`);
        fleet = await startLabFleet({
            hosts: [
                { name: MAC, role: "agent", os: "macos" },
                { name: LINUX, role: "agent" },
            ],
        });
    });

    afterAll(async () => {
        await fleet?.stop();
    });

    const lab = (): LabFleet => {
        if (!fleet) throw new Error("the lab fleet did not start (see beforeAll)");
        return fleet;
    };
    const ssh = (cmd: string, stdin?: string): Promise<ExecResult> => lab().ssh(MAC, cmd, stdin, { timeoutMs: 60_000 });

    test("GNU-only options are refused with BSD's message, by name and at /usr/bin; GNU-only tools are absent", async () => {
        const r = await ssh(
            [
                "stat -c %a /etc/hostname; echo rc=$?",
                "/usr/bin/stat -c %a /etc/hostname; echo rc=$?",
                "/bin/mv -T a b; echo rc=$?",
                "date -d @0; echo rc=$?",
                'for t in sha256sum timeout ip systemctl journalctl flock; do command -v $t >/dev/null || echo "no $t"; done',
                "sha256sum /etc/hostname; echo rc=$?",
                "command -v shasum launchctl stat",
            ].join("\n"),
        );
        expect(r.stdout).toBe(
            [
                "rc=1",
                "rc=1",
                "rc=64",
                "rc=1",
                "no sha256sum",
                "no timeout",
                "no ip",
                "no systemctl",
                "no journalctl",
                "no flock",
                "rc=127",
                "/usr/bin/shasum",
                "/usr/bin/launchctl",
                "/usr/bin/stat",
                "",
            ].join("\n"),
        );
        expect(r.stderr).toContain("stat: illegal option -- c\nusage: stat [-FLnq]");
        expect(r.stderr).toContain("mv: illegal option -- T\nusage: mv [-f | -i | -n] [-hv] source target");
        expect(r.stderr).toContain("date: illegal option -- d");
        expect(r.stderr).toContain("sha256sum: command not found");
    });

    test("bash sessions are set up as 3.2: BASH_COMPAT, and mapfile/readarray are gone, also in a nested bash", async () => {
        const r = await ssh('echo "$BASH_COMPAT $PATH"; mapfile x </dev/null; echo rc=$?; bash -c "readarray y </dev/null; echo nested=\\$?"');
        expect(r.stdout).toBe("3.2 /usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\nrc=127\nnested=127\n");
        expect(r.stderr).toContain("mapfile: command not found");
    });

    test("chown root:wheel works (gid 0 is wheel), stat -f reads it back", async () => {
        const r = await ssh("f=/etc/shortcircuit/probe; echo hi > $f; chown root:wheel $f; chmod 640 $f; stat -f '%Su:%Sg %Lp %HT' $f");
        expect(r).toMatchObject({ code: 0, stdout: "root:wheel 640 Regular File\n" });
    });

    test("launchctl keeps launchd's system-domain rules and runs the job's program", async () => {
        const f = lab();
        fs.writeFileSync(f.hostPath(MAC, PROGRAM), PROGRAM_TEXT, { mode: 0o755 });
        fs.writeFileSync(f.hostPath(MAC, PLIST_PATH), plistText(LABEL, PROGRAM, true), { mode: 0o644 });

        // Not root: modifying the system domain is refused, reading it is not.
        const denied = await ssh(
            `${NOBODY} launchctl bootstrap system ${PLIST_PATH}; echo rc=$?; ${NOBODY} launchctl kickstart -k system/${LABEL}; echo rc=$?`,
        );
        expect(denied.stdout).toBe("rc=1\nrc=113\n");
        expect(denied.stderr).toBe(`Bootstrap failed: 1: Operation not permitted\nCould not find service "${LABEL}" in domain for system\n`);
        expect(await ssh(`launchctl print system/${LABEL}`)).toMatchObject({ code: 113, stderr: `Could not find service "${LABEL}" in domain for system\n` });

        expect(await ssh(`launchctl bootstrap system ${PLIST_PATH}`)).toMatchObject({ code: 0, stderr: "" });
        const again = await ssh(`launchctl bootstrap system ${PLIST_PATH}`);
        expect(again).toMatchObject({ code: 5, stderr: "Bootstrap failed: 5: Input/output error\n" });

        const printed = await ssh(`${NOBODY} launchctl print system/${LABEL}`);
        expect(printed.code).toBe(0);
        expect(printed.stdout).toContain("\tstate = running\n");
        const pid = Number(/\tpid = (\d+)/.exec(printed.stdout)?.[1]);
        expect(pid).toBeGreaterThan(0);
        // The program is the plist's, with its arguments.
        expect((await ssh(`tr '\\0' ' ' < /proc/${pid}/cmdline`)).stdout).toBe(`/bin/sh ${PROGRAM} --lab `);
        expect(await ssh(`${NOBODY} launchctl bootout system/${LABEL}; echo rc=$?`)).toMatchObject({
            stdout: "rc=1\n",
            stderr: "Boot-out failed: 1: Operation not permitted\n",
        });

        // kickstart -k: a new process; KeepAlive: a killed one is started again.
        const kicked = await ssh(`launchctl kickstart -k -p system/${LABEL}`);
        const pid2 = Number(kicked.stdout.trim());
        expect(pid2).toBeGreaterThan(0);
        expect(pid2).not.toBe(pid);
        expect((await ssh(`kill ${pid2}; ${GONE(pid2)}`)).stdout).toBe("gone\n");
        const respawned = await ssh(`launchctl print system/${LABEL}`);
        expect(respawned.stdout).toContain("\tstate = running\n");
        expect(Number(/\tpid = (\d+)/.exec(respawned.stdout)?.[1])).not.toBe(pid2);

        // bootout stops and unloads.
        const pid3 = Number(/\tpid = (\d+)/.exec(respawned.stdout)?.[1]);
        expect(await ssh(`launchctl bootout system/${LABEL}`)).toMatchObject({ code: 0 });
        expect((await ssh(GONE(pid3))).stdout).toBe("gone\n");
        expect(await ssh(`launchctl bootout system/${LABEL}`)).toMatchObject({ code: 3, stderr: "Boot-out failed: 3: No such process\n" });

        // A plist launchd would refuse: group-writable.
        await ssh(`chmod 664 ${PLIST_PATH}`);
        expect(await ssh(`launchctl bootstrap system ${PLIST_PATH}`)).toMatchObject({ code: 5, stderr: "Bootstrap failed: 5: Input/output error\n" });
        await ssh(`chmod 644 ${PLIST_PATH}`);

        const events = f.launchdEvents(MAC, LABEL);
        const verbs = events.map((e) => `${e.verb}:${e.exitCode}`);
        expect(verbs).toEqual(
            expect.arrayContaining(["bootstrap:0", "spawn:0", "bootstrap:5", "kill:0", "kickstart:0", "keepalive-respawn:0", "bootout:0", "bootout:3"]),
        );
        // Non-root calls change nothing and are not recorded as changes.
        expect(events.filter((e) => e.uid !== 0 && e.verb !== "print")).toEqual([]);
        expect(events.filter((e) => e.verb === "bootstrap" && e.exitCode === 0)).toHaveLength(1);
        expect(f.launchdState(MAC).jobs[LABEL]).toBeUndefined();
    });

    test("file delivery's launchd branch installs a job's files and starts it through launchctl", async () => {
        const label = "io.kub0.lab-delivered";
        const plist = `/Library/LaunchDaemons/${label}.plist`;
        const program = "/usr/local/sbin/lab-delivered";
        // The job's program is the host's own (as nebula or derper are): it is there before the
        // step, which refuses to install a job whose program is missing.
        await ssh(`cat > ${program}; chown root:wheel ${program}; chmod 755 ${program}`, PROGRAM_TEXT);
        const payload = framedPayload(
            {
                STEP: "lab-delivery",
                SERVICE_MANAGER: "launchd",
                SERVICE: label,
                PLIST: plist,
                RESTART: "yes",
                CHECK_TIMEOUT: "20",
                OWNER: "root:wheel",
                SECRET_PATHS: "",
                PRECHECK_NEBULA_CONFIG: "",
                CHECK_PORT: "",
                CHECK_INTERFACE: "",
                RELOAD_PATHS: "",
                NEBULA_CERT: "",
                NEBULA_CERT_NETWORKS: "",
                PROGRAM: program,
                PROGRAM_FIELD: "",
                CONFLICT_PROGRAM: "lab-delivered",
                ADOPT_LABEL: "",
                ADOPT_FIELD: "",
            },
            [{ target: plist, mode: 0o644, content: plistText(label, program, false) }],
        );
        const r = await ssh(remoteScript("remote/deliver-files.sh"), payload);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`lab-delivery: restarted ${label}; it is active and answering`);
        expect((await ssh(`stat -f '%Su:%Sg %Lp' ${plist} ${program}`)).stdout).toBe("root:wheel 644\nroot:wheel 755\n");
        expect(lab().launchdState(MAC).jobs[label]?.pid).toBeGreaterThan(0);
        // The step runs under umask 077; launchd's state stays readable to anyone.
        expect(await ssh(`${NOBODY} launchctl print system/${label} | grep 'state = '`)).toMatchObject({ code: 0, stdout: "\tstate = running\n" });
        // A second run changes nothing and restarts nothing.
        const before = lab().launchdEvents(MAC, label).length;
        const again = await ssh(remoteScript("remote/deliver-files.sh"), payload);
        expect(again).toMatchObject({ code: 0, stdout: "lab-delivery: no change\n" });
        expect(lab().launchdEvents(MAC, label)).toHaveLength(before);
    });

    test("a step launched as the program launches it folds a long logged line there (prelude's FIFOs, mktemp -d, read -n under bash 3.2 setup)", async () => {
        const script = `${scriptFile("remote/prelude.sh")}printf '%s\\n' "$(param STEP)"\nhead -c 40000 /dev/zero | tr '\\0' x; echo\necho done >&2\n`;
        const r = await ssh(stepLauncher("test/mac-long-line.sh", script, "stdoutAndStderr"), stepStdin(script, "STEP=mac-step\n\n"));
        expect(r.code).toBe(0);
        expect(r.stderr).toBe("done\n");
        const mark = " [shortcircuit: line folded here, it goes on in the next line]\n";
        const lines = r.stdout.split("\n");
        expect(lines[0]).toBe("mac-step");
        expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(16000 + mark.length);
        expect(r.stdout.split(mark).join("")).toBe(`mac-step\n${"x".repeat(40000)}\n`);
        // The launcher read its script through the older macOS dd: iflag refused before reading, then bs=1.
        const dds = lab()
            .toolInvocations(MAC)
            .filter((call) => call.tool === "dd");
        expect(dds.some((call) => call.argv.includes("iflag=fullblock") && call.exitCode === 1)).toBe(true);
        expect(dds.some((call) => call.argv.includes("bs=1") && call.exitCode === 0)).toBe(true);
        // It unpacked the script with macOS's base64 and gzip (their stand-ins refuse GNU-only options).
        const calls = lab().toolInvocations(MAC);
        expect(calls.some((call) => call.tool === "base64" && call.argv.join(" ") === "--decode" && call.exitCode === 0)).toBe(true);
        expect(calls.some((call) => call.tool === "gzip" && call.argv.join(" ") === "-dc" && call.exitCode === 0)).toBe(true);
    });

    test("drift's collector reads a file's mode, owner, hash and mtime and a launchd job's state there", async () => {
        const file = "/etc/shortcircuit/collected";
        const content = "collected on a Mac\n";
        await ssh(`cat > ${file}; chown root:wheel ${file}; chmod 640 ${file}`, content);
        const payload = framedPayload({
            PATHS: `${file} /etc/shortcircuit/absent`,
            TEXT_PATHS: file,
            TEXT_LIMIT: "1000",
            IFACES: "nebula1",
            SERVICES: "launchd:io.kub0.lab-delivered launchd:io.kub0.not-loaded",
            KUBECTL: "no",
        });
        const r = await ssh(collectorScript(), payload);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const lines = r.stdout.split("\n");
        const mtime = (await ssh(`stat -f %.9Fm ${file}`)).stdout.trim();
        expect(lines).toContain(`file ${file} present ${createHash("sha256").update(content).digest("hex")} 640 root:wheel ${mtime} regular_file`);
        expect(lines).toContain("file /etc/shortcircuit/absent missing");
        expect(lines).toContain("iface nebula1 missing");
        expect(lines).toContain("svc io.kub0.lab-delivered ActiveState=active");
        expect(lines).toContain("svc io.kub0.not-loaded LoadState=not-found");
        // BSD date has no %N: whole seconds.
        expect(lines[1]).toMatch(/^clock \d+\.000000000 /);
        const observed = parseCollectorOutput(Buffer.from(r.stdout));
        expect(observed.files.get(file)).toMatchObject({ mode: 0o640, owner: "root:wheel", type: "regular file" });
        expect(observed.texts.get(file)).toBe(content);
    });

    test("a Linux host beside it keeps GNU tools, systemctl and its usual PATH", async () => {
        const r = await lab().ssh(LINUX, 'stat -c %a /etc/hostname >/dev/null && command -v sha256sum systemctl ip timeout && echo "${BASH_COMPAT:-unset}"');
        expect(r).toMatchObject({ code: 0, stdout: "/usr/bin/sha256sum\n/usr/local/bin/systemctl\n/usr/sbin/ip\n/usr/bin/timeout\nunset\n" });
    });
});
