/**
 * No script that runs on a Mac uses bash 4+ syntax (macOS's /bin/bash is 3.2), and the scan
 * that says so finds each construct when one is planted.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BASH4_CONSTRUCTS, MAC_BOUND_SCRIPTS, findBash4Constructs, scanMacBoundScripts } from "../../../../scripts/lab/macos/bash32Scan";

const root = path.resolve(__dirname, "../../../..");

describe("bash 3.2 safety of the Mac-bound scripts", () => {
    it("finds no bash 4+ construct in any of them", () => {
        expect(scanMacBoundScripts(root)).toEqual([]);
    });

    it("covers the scripts the macOS steps run (deliver-files and derper's install after the prelude), drift's collector and ssh-switch", () => {
        for (const f of MAC_BOUND_SCRIPTS) expect(fs.existsSync(path.join(root, f))).toBe(true);
        const fileDelivery = fs.readFileSync(path.join(root, "components/remote/fileDelivery.ts"), "utf8");
        const derpRelay = fs.readFileSync(path.join(root, "components/derp/derpRelay.ts"), "utf8");
        expect(fileDelivery).toContain('script: "remote/deliver-files.sh"');
        expect(derpRelay).toContain('script: "derp/install.sh"');
    });

    const planted: [string, string][] = [
        ["declare/local/typeset -A (associative array)", "declare -A seen=()"],
        ["declare/local/typeset -A (associative array)", "  local -A map"],
        ["declare/local -n (nameref)", 'local -n ref="$1"'],
        ["declare -g (global from a function)", "declare -g x=1"],
        ["declare/local -l/-u (case-converting variable)", "declare -l lower"],
        ["local - (local shell options)", "  local -"],
        ["mapfile/readarray", "mapfile -t lines < <(ls)"],
        ["mapfile/readarray", "readarray lines"],
        ["${x,,} ${x^^} ${x,} ${x^} (case modification)", 'echo "${name,,}"'],
        ["${x,,} ${x^^} ${x,} ${x^} (case modification)", 'echo "${name^^}"'],
        ["${x,,} ${x^^} ${x,} ${x^} (case modification)", 'echo "${name,}"'],
        ["${x,,} ${x^^} ${x,} ${x^} (case modification)", 'echo "${name^}"'],
        ["${x@Q} and other @ transformations", 'echo "${value@Q}"'],
        ["&>> (append stdout and stderr)", "cmd &>>log"],
        ["|& (pipe stdout and stderr)", "cmd |& tee log"],
        [";& / ;;& (case fall-through)", "  a) echo a ;&"],
        [";& / ;;& (case fall-through)", "  a) echo a ;;&"],
        ["coproc", "coproc worker { cat; }"],
        ["negative array subscript", 'echo "${arr[-1]}"'],
        ["negative array subscript", "arr[-1]=x"],
        ["${x:offset:-length} (negative length)", 'echo "${s:1:-1}"'],
        ["wait -n / -f / -p", "wait -n"],
        ["printf -v into an array element", "printf -v 'arr[1]' %s x"],
        ["printf %(fmt)T", "printf '%(%s)T' -1"],
        ["read -N / -i", "read -r -N 4 chunk"],
        ["[[ -v ]] / test -v (variable is set)", "if [[ -v name ]]; then :; fi"],
        ["exec {fd}> (automatic file descriptor)", "exec {fd}>file"],
        ["{a..b..step} / {01..10} (brace step, zero padding)", "for i in {1..10..2}; do :; done"],
        ["$BASHPID $EPOCHSECONDS $EPOCHREALTIME $SRANDOM $BASH_ARGV0", "echo $EPOCHREALTIME"],
        ["shopt of a 4.0+ option (globstar, lastpipe, inherit_errexit, ...)", "shopt -s globstar"],
    ];

    it("has a planted example for every construct it knows", () => {
        expect(new Set(planted.map(([name]) => name))).toEqual(new Set(BASH4_CONSTRUCTS.map((c) => c.name)));
    });

    it.each(planted)("finds %s in `%s`", (name, line) => {
        expect(findBash4Constructs(line).map((f) => f.construct)).toContain(name);
    });

    it("fails the real scan when a construct is planted in a Mac-bound script", () => {
        const prelude = fs.readFileSync(path.join(root, "components/remote/prelude.sh"), "utf8");
        const findings = findBash4Constructs(`${prelude}\ndeclare -A owners=()\n`, "components/remote/prelude.sh");
        expect(findings).toEqual([
            expect.objectContaining({ file: "components/remote/prelude.sh", line: prelude.split("\n").length + 1, since: "4.0", text: "declare -A owners=()" }),
        ]);
    });

    it("does not flag what bash 3.2 has", () => {
        const ok = [
            'echo "${#name}" "${name:-x}" "${name%%.*}" "${arr[@]+"${arr[@]}"}" "${name//./\\\\.}"',
            "printf -v octal '%03o' 8",
            "IFS= read -r -n 100 piece",
            "read -r -a words < file",
            "cmd >/dev/null 2>&1 &",
            "for ((i = 0; i < 3; i++)); do :; done",
            "case $x in a) echo a ;; esac",
            "exec 3<>/dev/tcp/127.0.0.1/80",
            "# declare -A in a comment",
            "local status=$? pid",
        ];
        expect(ok.flatMap((l) => findBash4Constructs(l))).toEqual([]);
    });
});
