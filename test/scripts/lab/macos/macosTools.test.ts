/**
 * The macOS (BSD) stand-ins of scripts/lab/macos, run as processes outside a lab host: each
 * accepts the macOS form of the options the project's scripts use and refuses the GNU-only
 * form with BSD's message, usage and exit status (docs/macos-userland.md has the man page facts).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { build as buildPlist } from "plist";
import { buildBsdUserland, type BsdUserland } from "../../../support/bsdUserland";

jest.setTimeout(60_000);

let dir: string;
let bsd: BsdUserland;

beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-bsd-"));
    bsd = await buildBsdUserland(dir);
    fs.writeFileSync(path.join(dir, "f"), "hello\nworld\n", { mode: 0o640 });
    fs.chmodSync(path.join(dir, "f"), 0o640);
    fs.symlinkSync("f", path.join(dir, "link"));
});

afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `cmd` with bash in the scratch directory, the stand-ins first on PATH. */
function sh(cmd: string, env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync("bash", ["-c", cmd], {
        cwd: dir,
        encoding: "utf8",
        timeout: 20_000,
        env: { PATH: `${bsd.binDir}:/usr/bin:/bin`, HOME: dir, LC_ALL: "C", ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("GNU-only options are refused as BSD refuses them", () => {
    it.each([
        ["stat -c %a f", 1, "stat: illegal option -- c\nusage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file|handle ...]\n"],
        ["stat --format=%a f", 1, "stat: illegal option -- -\n"],
        ["mv -T f g", 64, "mv: illegal option -- T\nusage: mv [-f | -i | -n] [-hv] source target\n       mv [-f | -i | -n] [-v] source ... directory\n"],
        ["cp -t /tmp f", 64, "cp: illegal option -- t\n"],
        ["ln -T f g", 1, "ln: illegal option -- T\n"],
        ["ln -r f g", 1, "ln: illegal option -- r\n"],
        ["date -d @0", 1, "date: illegal option -- d\n"],
        ["readlink -e f", 1, "readlink: illegal option -- e\nusage: readlink [-fn] [file ...]\n"],
        ["readlink -m f", 1, "readlink: illegal option -- m\n"],
        ["mktemp --tmpdir x.XXXX", 1, "mktemp: illegal option -- -\n"],
        ["mktemp -p /tmp x.XXXX", 1, "mktemp: illegal option -- p\nusage: mktemp [-d] [-q] [-t prefix] [-u] template ...\n"],
        ["install -D f sub/g", 64, "install: illegal option -- D\n"],
        ["install -t /tmp f", 64, "install: illegal option -- t\n"],
        ["find . -printf '%p'", 1, "find: -printf: unknown primary or operator\n"],
        ["find -name f", 1, "find: illegal option -- n\n"],
        ["chmod -c 644 f", 1, "chmod: illegal option -- c\n"],
        ["chmod --reference=f f", 1, "chmod: illegal option -- -\n"],
        ["chown -c root f", 1, "chown: illegal option -- c\n"],
        ["head -n -1 f", 1, "head: illegal line count -- -1\n"],
        ["head -q f", 1, "head: illegal option -- q\n"],
        ["tail -s 1 f", 1, "tail: illegal option -- s\n"],
        ["sed -z s/a/b/ f", 1, "sed: illegal option -- z\n"],
        ["sed --posix s/a/b/ f", 1, "sed: illegal option -- -\n"],
        ["wc --total=never f", 1, "wc: illegal option -- -\nusage: wc [-Lclmw] [file ...]\n"],
        ["base64 -w 0 f", 64, "base64: invalid argument -w\nUsage:\tbase64 [-hDd] [-b num] [-i in_file] [-o out_file]\n"],
        ["base64 --wrap=0 f", 64, "base64: invalid argument --wrap=0\n"],
        ["base64 -di f", 64, "base64: invalid argument -di\n"],
        ["gzip --rsyncable f", 1, "gzip: unrecognized option `--rsyncable'\nusage: gzip [-123456789acdfhklLNnqrtVv]"],
        ["gzip -dcX f", 1, "gzip: illegal option -- X\n"],
    ])("%s", (cmd, code, stderrStart) => {
        const r = sh(cmd);
        expect(r.code).toBe(code);
        expect(r.stderr.startsWith(stderrStart)).toBe(true);
        expect(r.stdout).toBe("");
    });
});

describe("the macOS forms work", () => {
    it("stat -f with BSD's format letters; lstat unless -L; names from the machine, gid 0 as wheel", () => {
        const st = fs.statSync(path.join(dir, "f"));
        const r = sh("stat -f '%Mp%Lp %Su:%Sg %z %HT %N' f && stat -f '%HT' link && stat -L -f '%HT' link && stat -f '%Sp %.9Fm %m' f");
        expect(r.stderr).toBe("");
        const lines = r.stdout.split("\n");
        expect(lines[0]).toBe(`0640 root:wheel 12 Regular File f`);
        expect(lines.slice(1, 3)).toEqual(["Symbolic Link", "Regular File"]);
        const [modeText, fm, m] = (lines[3] ?? "").split(" ");
        expect(modeText).toBe("-rw-r-----");
        expect(fm).toMatch(/^\d+\.\d{9}$/);
        expect(m).toBe(String(Math.floor(st.mtimeMs / 1000)));
        expect(Math.abs(Number(fm) - st.mtimeMs / 1000)).toBeLessThan(0.001);
    });

    it("stat of a missing file: BSD's message, exit 1; -q keeps quiet", () => {
        expect(sh("stat -f %z nope")).toEqual({ code: 1, stdout: "", stderr: "stat: nope: stat: No such file or directory\n" });
        expect(sh("stat -q -f %z nope")).toEqual({ code: 1, stdout: "", stderr: "" });
    });

    it("readlink: the target; nothing and exit 1 for a non-link; -f canonicalises (macOS 12.3 and later)", () => {
        expect(sh("readlink link")).toEqual({ code: 0, stdout: "f\n", stderr: "" });
        expect(sh("readlink f")).toEqual({ code: 1, stdout: "", stderr: "" });
        expect(sh("readlink -f link").stdout).toBe(`${fs.realpathSync(path.join(dir, "f"))}\n`);
        expect(sh("readlink -f nope").code).toBe(1);
    });

    it("sed -i takes the next word as the backup suffix: -i '' edits in place, -i 's/…/' eats the script", () => {
        fs.writeFileSync(path.join(dir, "s"), "a\n");
        expect(sh("sed -i '' s/a/b/ s && cat s")).toEqual({ code: 0, stdout: "b\n", stderr: "" });
        expect(sh("sed -i.bak s/b/c/ s && cat s s.bak")).toEqual({ code: 0, stdout: "c\nb\n", stderr: "" });
        const gnuStyle = sh("sed -i s/c/d/ s");
        expect(gnuStyle.code).toBe(1);
        expect(gnuStyle.stderr).toBe('sed: 1: "s": unterminated substitute pattern\n');
        expect(sh("sed -i '' s/c/d/").stderr).toBe("sed: -i may not be used with stdin\n");
        expect(sh("printf 'x\\n' | sed -e s/x/y/ -E")).toEqual({ code: 0, stdout: "y\n", stderr: "" });
    });

    it("date: +format works, %N is the letter N (BSD strftime), -r seconds and -u", () => {
        expect(sh("date -u -r 0 +%Y-%m-%dT%H:%M:%S")).toEqual({ code: 0, stdout: "1970-01-01T00:00:00\n", stderr: "" });
        expect(sh("date +%s.%N").stdout).toMatch(/^\d+\.N\n$/);
    });

    it("mktemp: a template's X's filled in; no template: $TMPDIR/tmp.XXXXXXXX; -t prefix; -d makes a 0700 directory", () => {
        const t = sh("mktemp x.XXXXXX").stdout.trim();
        expect(t).toMatch(/^x\.[A-Za-z0-9]{6}$/);
        expect(fs.statSync(path.join(dir, t)).mode & 0o777).toBe(0o600);
        const tmpdir = fs.mkdtempSync(path.join(dir, "tmpdir-"));
        expect(sh("mktemp", { TMPDIR: tmpdir }).stdout).toMatch(new RegExp(`^${tmpdir}/tmp\\.[A-Za-z0-9]{8}\\n$`));
        expect(sh("mktemp -t pre", { TMPDIR: tmpdir }).stdout).toMatch(new RegExp(`^${tmpdir}/pre\\.[A-Za-z0-9]{8}\\n$`));
        const d = sh("mktemp -d d.XXXX").stdout.trim();
        expect(fs.statSync(path.join(dir, d)).isDirectory()).toBe(true);
        expect(fs.statSync(path.join(dir, d)).mode & 0o777).toBe(0o700);
        expect(sh("mktemp /nonexistent/x.XXXX")).toEqual({
            code: 1,
            stdout: "",
            stderr: "mktemp: mkstemp failed on /nonexistent/x.XXXX: No such file or directory\n",
        });
    });

    it("wc pads counts as BSD does", () => {
        expect(sh("wc -c < f").stdout).toBe("      12\n");
        expect(sh("wc -l f").stdout).toBe("       2 f\n");
    });

    it("mv -f renames; -h renames over a link to a directory instead of moving into it", () => {
        fs.mkdirSync(path.join(dir, "dir1"));
        fs.symlinkSync("dir1", path.join(dir, "dlink"));
        fs.writeFileSync(path.join(dir, "m1"), "1");
        expect(sh("mv -f m1 m2 && cat m2")).toEqual({ code: 0, stdout: "1", stderr: "" });
        expect(sh("ln -s f newlink && mv -h newlink dlink && readlink dlink")).toEqual({ code: 0, stdout: "f\n", stderr: "" });
    });

    it("install -d -m, install -m -o -g (group wheel is gid 0), cp -p, ln -sfn, chmod, chown root:wheel", () => {
        expect(sh("install -d -m 0750 a/b && stat -f %Lp a/b")).toEqual({ code: 0, stdout: "750\n", stderr: "" });
        expect(sh("install -m 600 -o root -g wheel f a/b/f && stat -f '%Lp %Su:%Sg' a/b/f")).toEqual({ code: 0, stdout: "600 root:wheel\n", stderr: "" });
        expect(sh("cp -p f cp1 && stat -f %Lp cp1")).toEqual({ code: 0, stdout: "640\n", stderr: "" });
        expect(sh("ln -sfn f ln1 && ln -sfn cp1 ln1 && readlink ln1")).toEqual({ code: 0, stdout: "cp1\n", stderr: "" });
        expect(sh("chmod 0604 cp1 && chmod -w cp1 && stat -f %Lp cp1")).toEqual({ code: 0, stdout: "404\n", stderr: "" });
        expect(sh("chown root:wheel cp1 && stat -f %Sg cp1")).toEqual({ code: 0, stdout: "wheel\n", stderr: "" });
        expect(sh("chown nosuchuser cp1")).toEqual({ code: 1, stdout: "", stderr: "chown: nosuchuser: illegal user name\n" });
        expect(sh("chown :nosuchgroup cp1")).toEqual({ code: 1, stdout: "", stderr: "chown: nosuchgroup: illegal group name\n" });
    });

    it("head -n/-c and the obsolete -N, tail -n, find with BSD primaries", () => {
        expect(sh("head -n 1 f; head -c 3 f; echo; head -1 f; tail -n 1 f")).toEqual({ code: 0, stdout: "hello\nhel\nhello\nworld\n", stderr: "" });
        expect(sh("find . -maxdepth 1 -name f -type f")).toEqual({ code: 0, stdout: "./f\n", stderr: "" });
    });

    it("dd as an older macOS has it: operands work on a pipe; iflag is an unknown operand, refused before reading", () => {
        expect(sh("printf 'abcdefgh' | { dd bs=1 count=3 2>/dev/null; echo '|'; cat; }")).toEqual({ code: 0, stdout: "abc|\ndefgh", stderr: "" });
        // Nothing was read: the pipe still holds every byte for the fallback.
        expect(sh("printf 'abcdefgh' | { dd bs=3 count=1 iflag=fullblock; echo \"rc=$?\"; cat; }")).toEqual({
            code: 0,
            stdout: "rc=1\nabcdefgh",
            stderr: "dd: unknown operand iflag\n",
        });
        expect(sh("dd status=none </dev/null")).toEqual({ code: 1, stdout: "", stderr: "dd: unknown operand status\n" });
        expect(sh("dd -i </dev/null")).toEqual({ code: 1, stdout: "", stderr: "dd: unknown operand -i\n" });
    });

    it("base64 -d, -D and --decode, -i and -o; gzip -dc and its long forms: the launcher's unpacking", () => {
        const packed = "H4sIAAAAAAACA0tNzshXyEjNycnnAgBRDeHWCwAAAA==\n";
        for (const decode of ["--decode", "-d", "-D"]) {
            expect(sh(`printf '%s' '${packed}' | base64 ${decode} | gzip -dc`)).toEqual({ code: 0, stdout: "echo hello\n", stderr: "" });
        }
        expect(sh(`printf '%s' '${packed}' | base64 --decode | gzip --decompress --stdout`)).toEqual({ code: 0, stdout: "echo hello\n", stderr: "" });
        expect(sh("base64 -i f -o f.b64 && base64 -D -i f.b64")).toEqual({ code: 0, stdout: "hello\nworld\n", stderr: "" });
        // One line, ending in a newline, as Apple's encoder prints it; -b breaks it.
        expect(sh("printf 'hello' | base64; printf 'hello' | base64 -b 4")).toEqual({ code: 0, stdout: "aGVsbG8=\naGVs\nbG8=\n", stderr: "" });
        // Cut short: gzip fails, so the launcher runs nothing.
        expect(sh(`printf '%s' '${packed.slice(0, 20)}' | base64 --decode | gzip -dc`).code).not.toBe(0);
    });

    it("says it is a stand-in where it does not play a macOS option", () => {
        const r = sh("date -v+1d");
        expect(r.code).toBe(64);
        expect(r.stderr).toContain("TEST DOUBLE");
    });
});

describe("launchctl, its state in a scratch directory (root: the system domain needs it)", () => {
    const asRoot = process.getuid?.() === 0 ? it : it.skip;
    const label = "io.kub0.unit-sleeper";

    asRoot("bootstraps a parsed plist and runs its program, refuses a second bootstrap and a group-writable plist, boots out", () => {
        const plist = path.join(dir, `${label}.plist`);
        fs.writeFileSync(plist, buildPlist({ Label: label, Program: "/bin/sleep", ProgramArguments: ["sleep", "300"], RunAtLoad: true }), { mode: 0o644 });
        fs.chmodSync(plist, 0o644);
        expect(sh(`launchctl print system/${label}`)).toEqual({ code: 113, stdout: "", stderr: `Could not find service "${label}" in domain for system\n` });
        expect(sh(`launchctl bootstrap system ${plist}`)).toEqual({ code: 0, stdout: "", stderr: "" });
        expect(sh(`launchctl bootstrap system ${plist}`)).toEqual({ code: 5, stdout: "", stderr: "Bootstrap failed: 5: Input/output error\n" });
        const printed = sh(`launchctl print system/${label}`).stdout;
        expect(printed).toContain("\tstate = running\n");
        expect(printed).toContain("\tprogram = /bin/sleep\n");
        const pid = Number(/\tpid = (\d+)/.exec(printed)?.[1]);
        expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\u0000300\u0000");
        expect(sh(`launchctl bootout system ${plist}`)).toEqual({ code: 0, stdout: "", stderr: "" });
        expect(sh(`launchctl bootout system/${label}`)).toEqual({ code: 3, stdout: "", stderr: "Boot-out failed: 3: No such process\n" });
        fs.chmodSync(plist, 0o664);
        expect(sh(`launchctl bootstrap system ${plist}`).code).toBe(5);
        const state = JSON.parse(fs.readFileSync(path.join(bsd.stateDir, "launchd.json"), "utf8")) as {
            events: { verb: string; exitCode: number; detail?: string }[];
        };
        expect(state.events.filter((e) => e.verb === "bootstrap").map((e) => [e.exitCode, e.detail?.includes("already loaded") ?? false])).toEqual([
            [0, false],
            [5, true],
            [5, false],
        ]);
    });

    it("plays only the system domain and says so", () => {
        const r = sh(`launchctl print gui/501/${label}`);
        expect(r.code).toBe(64);
        expect(r.stderr).toContain("only the system domain is played");
    });
});
