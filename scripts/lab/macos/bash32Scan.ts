/**
 * A static check for bash 4+ syntax in the scripts that run on macOS, whose /bin/bash is 3.2:
 * the remote steps a Mac host runs (the prelude before every step, file delivery for Nebula and
 * derper, derper's install), drift's collector, and ssh-switch.sh on operators' Macs. The lab's
 * macOS-shaped host runs bash 5 set up as 3.2 (BASH_COMPAT=3.2, mapfile and readarray switched
 * off), which cannot refuse everything 3.2 lacks; this scan covers the rest. It reads line by
 * line, full-line comments skipped, so it may flag a construct quoted in a string: rephrase it.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Every script that runs on a Mac (repository paths). Which steps target a macOS host:
 * components/plan.ts gives a macOS node Nebula files delivered by remote/deliver-files.sh
 * (launchd), a relay with serviceManager launchd runs derp/install.sh and deliver-files.sh,
 * every step is prefixed by remote/prelude.sh; drift runs prelude + collect.sh on every host;
 * K3s steps never (stacks/guards.ts refuses a macOS K3s node), nor the control server's.
 */
export const MAC_BOUND_SCRIPTS: readonly string[] = [
    "components/remote/prelude.sh",
    "components/remote/deliver-files.sh",
    "components/derp/install.sh",
    "scripts/drift/collect.sh",
    "scripts/ssh-switch.sh",
];

export interface Bash4Construct {
    name: string;
    /** The bash version that brought it. */
    since: string;
    pattern: RegExp;
}

const NAME = "[A-Za-z_][A-Za-z0-9_]*";

export const BASH4_CONSTRUCTS: readonly Bash4Construct[] = [
    { name: "declare/local/typeset -A (associative array)", since: "4.0", pattern: /\b(declare|local|typeset|readonly)\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*A/ },
    { name: "declare/local -n (nameref)", since: "4.3", pattern: /\b(declare|local|typeset)\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*n/ },
    { name: "declare -g (global from a function)", since: "4.2", pattern: /\b(declare|typeset)\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*g/ },
    { name: "declare/local -l/-u (case-converting variable)", since: "4.0", pattern: /\b(declare|local|typeset)\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*[lu]/ },
    { name: "local - (local shell options)", since: "4.4", pattern: /\blocal\s+-(\s|$)/ },
    { name: "mapfile/readarray", since: "4.0", pattern: /\b(mapfile|readarray)\b/ },
    { name: "${x,,} ${x^^} ${x,} ${x^} (case modification)", since: "4.0", pattern: new RegExp(`\\$\\{[#!]?${NAME}(\\[[^\\]]*\\])?(,,|\\^\\^|,|\\^)`) },
    { name: "${x@Q} and other @ transformations", since: "4.4", pattern: new RegExp(`\\$\\{[!#]?${NAME}(\\[[^\\]]*\\])?@[QEPAaKkUuL]\\}`) },
    { name: "&>> (append stdout and stderr)", since: "4.0", pattern: /&>>/ },
    { name: "|& (pipe stdout and stderr)", since: "4.0", pattern: /\|&/ },
    { name: ";& / ;;& (case fall-through)", since: "4.0", pattern: /;;&|(^|[^;]);&/ },
    { name: "coproc", since: "4.0", pattern: /\bcoproc\b/ },
    { name: "negative array subscript", since: "4.3", pattern: new RegExp(`(\\$\\{${NAME}\\[-\\d+\\]\\}|\\b${NAME}\\[-\\d+\\]=)`) },
    { name: "${x:offset:-length} (negative length)", since: "4.2", pattern: new RegExp(`\\$\\{${NAME}:[^}:]*:\\s*-\\d`) },
    { name: "wait -n / -f / -p", since: "4.3", pattern: /\bwait\s+(-[a-zA-Z]*\s+)*-[a-zA-Z]*[nfp]\b/ },
    { name: "printf -v into an array element", since: "4.1", pattern: new RegExp(`\\bprintf\\s+-v\\s+["']?${NAME}\\[`) },
    { name: "printf %(fmt)T", since: "4.2", pattern: /%\([^)]*\)T/ },
    { name: "read -N / -i", since: "4.0", pattern: /\bread\s+(-[a-zA-Z]+\s+|-[a-zA-Z]*[dnptu]\s+\S+\s+)*-[a-zA-Z]*[Ni]\b/ },
    { name: "[[ -v ]] / test -v (variable is set)", since: "4.2", pattern: /(\[\[|\[|\btest)\s+(!\s+)?-v\s/ },
    { name: "exec {fd}> (automatic file descriptor)", since: "4.1", pattern: new RegExp(`(^|[^$])\\{${NAME}\\}[<>]`) },
    { name: "{a..b..step} / {01..10} (brace step, zero padding)", since: "4.0", pattern: /\{-?\d+\.\.-?\d+\.\.-?\d+\}|\{-?0\d+\.\./ },
    {
        name: "$BASHPID $EPOCHSECONDS $EPOCHREALTIME $SRANDOM $BASH_ARGV0",
        since: "4.0-5.1",
        pattern: /\$\{?(BASHPID|EPOCHSECONDS|EPOCHREALTIME|SRANDOM|BASH_ARGV0)\b/,
    },
    {
        name: "shopt of a 4.0+ option (globstar, lastpipe, inherit_errexit, ...)",
        since: "4.0-5.2",
        pattern:
            /\bshopt\s+-[su]\s+.*\b(globstar|lastpipe|inherit_errexit|autocd|checkjobs|direxpand|dirspell|localvar_inherit|localvar_unset|assoc_expand_once|patsub_replacement|globasciiranges|compat\d+)\b/,
    },
];

export interface Bash4Finding {
    file: string;
    line: number;
    construct: string;
    since: string;
    text: string;
}

/** Every bash 4+ construct in `text` (named `file` in the findings). */
export function findBash4Constructs(text: string, file = "-"): Bash4Finding[] {
    const findings: Bash4Finding[] = [];
    text.split("\n").forEach((raw, i) => {
        if (/^\s*#/.test(raw)) return;
        for (const c of BASH4_CONSTRUCTS) {
            if (c.pattern.test(raw)) findings.push({ file, line: i + 1, construct: c.name, since: c.since, text: raw.trim() });
        }
    });
    return findings;
}

/** The scan of every MAC_BOUND_SCRIPTS file under the repository root `root`. */
export function scanMacBoundScripts(root: string): Bash4Finding[] {
    return MAC_BOUND_SCRIPTS.flatMap((f) => findBash4Constructs(fs.readFileSync(path.join(root, f), "utf8"), f));
}
