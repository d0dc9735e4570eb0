import { gunzipSync, gzipSync, strFromU8, strToU8 } from "fflate";

/*
 * How a step's script travels in its stdin: gzip, then base64 in lines of 76 characters, then a
 * newline before the payload. Every step carries its whole script in its stdin, so the script is
 * in every registration the SDK encodes (google-protobuf, one character at a time) and in every
 * answer it decodes, previews included: on a prod-sized stack that was most of the 1.6 MB the
 * program and the engine passed back and forth for 132 steps. Packed, a script is about 40 % of
 * its text (docs/development.md, "Speed").
 *
 * The host unpacks it with `base64 --decode | gzip -dc` (remoteCommand.ts's launcher): GNU
 * coreutils and gzip on Linux; on macOS, Apple's base64 (`-D`/`-d`, `--decode`) and its BSD gzip
 * (docs/macos-userland.md). Lines of 76 characters, because one of Apple's base64 builds hands
 * decoding to `openssl enc -d`, which wants a newline early in its input.
 *
 * The packed text must be the same for the same script on every operator's machine, or every
 * step would show a change in a preview run elsewhere. node:zlib is not: Node bundles
 * Chromium's zlib, whose match finder hashes with CRC32 instructions where the CPU has them, so
 * its output can differ between an x86 and an ARM machine, and between Node versions. fflate is
 * plain JavaScript, pinned in package.json (0.8.2); its header's time is set to 0. Upgrading it
 * may change the packed text of every step once: test/components/remote/packedScript.test.ts
 * pins a digest of it so that shows in review, not as a surprise on the fleet.
 */

const LINE = 76;
const packed = new Map<string, string>();

/** The script as it goes into stdin: gzip, base64 in 76-character lines, each ending in a newline. */
export function packScript(script: string): string {
    let text = packed.get(script);
    if (text === undefined) {
        const base64 = Buffer.from(gzipSync(strToU8(script), { level: 9, mtime: 0 })).toString("base64");
        const lines: string[] = [];
        for (let start = 0; start < base64.length; start += LINE) lines.push(`${base64.slice(start, start + LINE)}\n`);
        text = lines.join("");
        packed.set(script, text);
    }
    return text;
}

/** The script a packed text carries; throws on text packScript did not make. */
export function unpackScript(text: string): string {
    if (!/^(?:[A-Za-z0-9+/=]{1,76}\n)+$/.test(text)) throw new Error("not a packed step script: not base64 in lines of at most 76 characters");
    return strFromU8(gunzipSync(new Uint8Array(Buffer.from(text, "base64"))));
}
