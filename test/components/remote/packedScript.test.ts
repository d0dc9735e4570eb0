import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { packScript, unpackScript } from "../../../components/remote/packedScript";
import { REMOTE_SCRIPTS, remoteScript } from "../../../components/remote/scripts";

/*
 * Every step's script travels packed (gzip, then base64) and a host unpacks it with its own
 * base64 and gzip. These run the real tools on every step's packed script, and pin the packed
 * text of a fixed sample: it must be the same on every operator's machine and only change when
 * fflate's output does (then every step on the fleet shows an update once; say so in review).
 */

/** What a Linux host does with a packed script: GNU base64 and gzip. */
function unpackWithTools(text: string): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync("sh", ["-c", "base64 --decode | gzip -dc"], { input: text, encoding: "utf8", timeout: 60_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A fixed text with repeats, long lines and multi-byte characters, so LZ77 and Huffman both have work. */
function sample(): string {
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) lines.push(`line ${i} ${"abcdefghij".repeat(i % 13)} ${(i * 7919) % 1009} prüft — ${i % 5 === 0 ? "x".repeat(200) : ""}`);
    return `${lines.join("\n")}\n`;
}

describe("a packed step script", () => {
    it.each(REMOTE_SCRIPTS)("%s: base64 --decode | gzip -dc gives back the script, byte for byte", (path) => {
        const script = remoteScript(path);
        const packed = packScript(script);
        expect(unpackWithTools(packed)).toEqual({ code: 0, stdout: script, stderr: "" });
        expect(unpackScript(packed)).toBe(script);
        expect(packed.length).toBeLessThan(script.length * 0.6);
    });

    it("is base64 in lines of 76 characters, ending in a newline", () => {
        const packed = packScript(sample());
        const lines = packed.split("\n");
        expect(lines.pop()).toBe("");
        expect(lines.length).toBeGreaterThan(2);
        expect(lines.slice(0, -1).every((line) => line.length === 76)).toBe(true);
        expect(lines.every((line) => /^[A-Za-z0-9+/=]{1,76}$/.test(line))).toBe(true);
    });

    it("is the same text on every machine and every run: no time in the gzip header, a pinned encoder", () => {
        const packed = packScript(sample());
        const header = Buffer.from(packed.replace(/\n/g, ""), "base64").subarray(0, 10);
        // Magic, deflate, no flags (no name), mtime 0, then extra flags and the OS byte.
        expect([...header.subarray(0, 8)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        expect(createHash("sha256").update(packed).digest("hex")).toBe("d0bf86f65504a9afac9dd96fa42576979eb35ee2764b42fae19a3117a3d7056b");
        expect(unpackWithTools(packed).stdout).toBe(sample());
    });

    it("refuses a text it did not make, so a stdin that is not a step's cannot pass for one", () => {
        expect(() => unpackScript("echo hi\n")).toThrow(/not a packed step script/);
        expect(() => unpackScript(packScript("echo hi\n").replace(/^..../, "AAAA"))).toThrow();
    });

    // The launcher relies on this: gzip exits non-zero on a cut-short or empty input, so a step
    // whose script did not arrive whole runs nothing.
    it("cut short or missing, it fails to unpack with the real tools", () => {
        const packed = packScript(remoteScript("remote/deliver-files.sh"));
        expect(unpackWithTools(packed.slice(0, Math.floor(packed.length / 2))).code).not.toBe(0);
        expect(unpackWithTools("").code).not.toBe(0);
    });
});
