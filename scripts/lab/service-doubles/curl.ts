/**
 * curl: hosts have no internet, so only cued URLs answer (curlResponses).
 */
import * as fs from "node:fs";
import { TAG, complain, cue, fail, help, out } from "./common";

export const CURL_VALUE_SHORT = "oHXdumAwerETFbcKCYyzQx";
export const CURL_VALUE_LONG = new Set([
    "--output",
    "--retry",
    "--retry-delay",
    "--retry-max-time",
    "--max-time",
    "--connect-timeout",
    "--resolve",
    "--header",
    "--request",
    "--data",
    "--data-raw",
    "--data-binary",
    "--user",
    "--user-agent",
    "--write-out",
    "--cacert",
    "--capath",
    "--cert",
    "--key",
    "--proxy",
    "--url",
    "--referer",
    "--form",
    "--upload-file",
    "--range",
    "--connect-to",
    "--interface",
    "--config",
    "--limit-rate",
]);

export function curl(argv: string[]): number {
    const c = cue();
    let output: string | null = null;
    let failFlag = false;
    let silent = false;
    let showError = false;
    const urls: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--help" || a === "-h") return help("curl", "URL [-o FILE] [-fsSL...]; answers only URLs cued in curlResponses, else exit 7");
        if (a.startsWith("--")) {
            const [name, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
            const v = CURL_VALUE_LONG.has(name) ? (inline ?? argv[++i] ?? "") : undefined;
            if (name === "--output" && v !== undefined) output = v;
            else if (name === "--url" && v !== undefined) urls.push(v);
            else if (name === "--fail") failFlag = true;
            else if (name === "--silent") silent = true;
            else if (name === "--show-error") showError = true;
        } else if (a.startsWith("-") && a.length > 1) {
            for (let j = 1; j < a.length; j++) {
                const ch = a[j] ?? "";
                if (CURL_VALUE_SHORT.includes(ch)) {
                    const v = j + 1 < a.length ? a.slice(j + 1) : (argv[++i] ?? "");
                    if (ch === "o") output = v;
                    break;
                }
                if (ch === "f") failFlag = true;
                else if (ch === "s") silent = true;
                else if (ch === "S") showError = true;
            }
        } else urls.push(a);
    }
    const url = urls[0];
    if (url === undefined) fail(2, "curl: no URL specified");
    const answer = c.curlResponses?.[url];
    const errLine = (code: number, text: string): number => {
        if (!silent || showError) complain(`curl: (${code}) ${text}`);
        return code;
    };
    if (answer === undefined) {
        let hostPort = url;
        try {
            const u = new URL(url);
            hostPort = `${u.hostname} port ${u.port || (u.protocol === "https:" ? "443" : "80")}`;
        } catch {
            // not a URL: say it as given
        }
        return errLine(
            7,
            `Failed to connect to ${hostPort} after 0 ms: Couldn't connect to server (${TAG}: test hosts have no internet; cue curlResponses to answer)`,
        );
    }
    if (failFlag && (answer.httpStatus ?? 200) >= 400) return errLine(22, `The requested URL returned error: ${answer.httpStatus ?? 0}`);
    const code = answer.exitCode ?? 0;
    if (code !== 0) return errLine(code, `cued failure (${TAG})`);
    const body = answer.bodyBase64 !== undefined ? Buffer.from(answer.bodyBase64, "base64") : (answer.body ?? "");
    if (output !== null && output !== "-") fs.writeFileSync(output, body);
    else out.push(body.toString());
    return 0;
}
