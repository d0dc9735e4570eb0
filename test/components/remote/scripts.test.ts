import { spawnSync } from "node:child_process";
import { REMOTE_SCRIPTS, remoteScript, remoteScriptSource, withoutCommentLines } from "../../../components/remote/scripts";

/*
 * What a host runs is each step's script without comment and blank lines (remoteScript). A line
 * filter is only safe for scripts with no heredoc and no multi-line string, so this proves it
 * for every step with a real shell parser: shfmt's minified print of the AST, which drops
 * comments and layout and keeps every token, is the same for the written and the shipped text.
 */

/** shfmt's minified print of a bash script: the script's tokens, without comments or layout. */
function tokens(script: string): string {
    const result = spawnSync("shfmt", ["-ln", "bash", "-mn"], { input: script, encoding: "utf8", timeout: 60_000 });
    if (result.error) {
        throw new Error(`shfmt could not run (setup installs Debian's shfmt): ${result.error.message}`);
    }
    if (result.status !== 0) {
        throw new Error(`shfmt could not parse the script: ${result.stderr}`);
    }
    return result.stdout;
}

describe("the step scripts a host runs", () => {
    it.each(REMOTE_SCRIPTS)("%s: the shipped script is the written one, token for token, without a comment line", (script) => {
        const written = remoteScriptSource(script);
        const shipped = remoteScript(script);
        expect(tokens(shipped)).toBe(tokens(written));
        expect(shipped.split("\n").filter((line) => /^\s*#/.test(line))).toEqual([]);
        expect(shipped.length).toBeLessThan(written.length);
    });

    it("a comment after code and a # inside a line stay", () => {
        const script = 'echo "a#b" # why\nx=1#2\n  # gone\n\n\t\ny=${x#1}\n';
        expect(withoutCommentLines(script)).toBe('echo "a#b" # why\nx=1#2\ny=${x#1}\n');
    });

    // The proof above can fail: a line filter breaks a multi-line string, and the parser sees it.
    it("the token check tells a multi-line string the filter would break", () => {
        const script = 'message="first\n# not a comment: inside the string\n\nlast"\necho "$message"\n';
        expect(tokens(withoutCommentLines(script))).not.toBe(tokens(script));
    });
});
