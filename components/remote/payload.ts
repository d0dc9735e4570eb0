/*
 * The one stdin format every remote step reads (remote/prelude.sh): `KEY=value` lines, a blank
 * line, then files, each `@file <octal mode> <bytes> <target>` followed by exactly that many
 * bytes. Content travels as text, so `pulumi preview --diff` shows a changed file line by line;
 * the length framing means no content is ever parsed as shell or as a delimiter.
 *
 * A target is an absolute path on the host (a file the step installs there) or a bare name (an
 * attachment the step's script reads, such as the first pass of a two-pass K3s move).
 */

export type PayloadParams = Readonly<Record<string, string>>;

export interface PayloadFile {
    /** Absolute path on the host, or a bare attachment name. */
    target: string;
    /** Permission bits, e.g. 0o600. */
    mode: number;
    content: string;
}

const PARAM_KEY = /^[A-Z][A-Z0-9_]*$/;
// Printable ASCII without the characters prelude.sh splits on; a value needs no quoting there.
const PARAM_VALUE = /^[\x20-\x7e]*$/;
const ABSOLUTE_TARGET = /^(\/[A-Za-z0-9._@+-]+)+$/;
const ATTACHMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class PayloadError extends Error {}

export function isHostPath(target: string): boolean {
    return target.startsWith("/");
}

function checkTarget(target: string): void {
    const segments = target.split("/");
    const valid = isHostPath(target) ? ABSOLUTE_TARGET.test(target) && !segments.includes("..") && !segments.includes(".") : ATTACHMENT_NAME.test(target);
    if (!valid) {
        throw new PayloadError(`payload file target ${JSON.stringify(target)} must be an absolute path of plain segments or a bare file name`);
    }
}

export function framedPayload(params: PayloadParams, files: readonly PayloadFile[] = []): string {
    const lines = Object.entries(params).map(([key, value]) => {
        if (!PARAM_KEY.test(key) || !PARAM_VALUE.test(value)) {
            throw new PayloadError(`payload parameter ${key} must be an upper-case name with a single-line printable ASCII value`);
        }
        return `${key}=${value}\n`;
    });
    const framed = files.map((file) => {
        checkTarget(file.target);
        if (!Number.isInteger(file.mode) || file.mode < 0 || file.mode > 0o7777) {
            throw new PayloadError(`payload file ${file.target} has an invalid mode ${file.mode}`);
        }
        return `@file ${file.mode.toString(8).padStart(4, "0")} ${Buffer.byteLength(file.content, "utf8")} ${file.target}\n${file.content}`;
    });
    return `${lines.join("")}\n${framed.join("")}`;
}

/** Reads newline-ended lines and byte-counted blocks from one buffer: the framing of payloads and reports. */
export class FramedReader {
    private offset = 0;

    constructor(private readonly bytes: Buffer) {}

    /** The next line without its newline, or undefined at the end. */
    line(): string | undefined {
        if (this.offset >= this.bytes.length) {
            return undefined;
        }
        const end = this.bytes.indexOf(0x0a, this.offset);
        const stop = end === -1 ? this.bytes.length : end;
        const line = this.bytes.subarray(this.offset, stop).toString("utf8");
        this.offset = stop + 1;
        return line;
    }

    /** Exactly `size` bytes, or undefined when fewer are left. */
    take(size: number): string | undefined {
        if (!Number.isInteger(size) || size < 0 || this.offset + size > this.bytes.length) {
            return undefined;
        }
        const block = this.bytes.subarray(this.offset, this.offset + size).toString("utf8");
        this.offset += size;
        return block;
    }
}

/** The inverse of framedPayload, for tests and the program/render comparison. */
export function parsePayload(payload: string): { params: Record<string, string>; files: PayloadFile[] } {
    const reader = new FramedReader(Buffer.from(payload, "utf8"));
    const readLine = (): string | undefined => reader.line();
    const params: Record<string, string> = {};
    for (let line = readLine(); line !== undefined && line !== ""; line = readLine()) {
        const equals = line.indexOf("=");
        params[line.slice(0, equals)] = line.slice(equals + 1);
    }
    const files: PayloadFile[] = [];
    for (let header = readLine(); header !== undefined; header = readLine()) {
        if (header === "") {
            continue;
        }
        const match = /^@file ([0-7]{4}) ([0-9]+) (\S+)$/.exec(header);
        if (!match) {
            throw new PayloadError(`bad payload header ${JSON.stringify(header)}`);
        }
        const content = reader.take(Number(match[2]));
        if (content === undefined) {
            throw new PayloadError(`payload cut short at ${match[3]}`);
        }
        files.push({ target: match[3], mode: parseInt(match[1], 8), content });
    }
    return { params, files };
}
