import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { framedPayload, parsePayload } from "../../../components/remote/payload";
import { remoteScript, scriptFile } from "../../../components/remote/scripts";
import { versions } from "../../../components/versions";
import { validFleet } from "../../support/fixtures";

/*
 * The control server's bootstrap (control/bootstrap.sh) with real downloads from a loopback
 * HTTP server standing in for the release host: a tampered artifact is refused before anything
 * is installed. And the dpkg conffile prompt the first boot would hit, reproduced with a real
 * .deb of the same shape, gone with the options the bootstrap gives dpkg.
 *
 * The bootstrap runs as root in a private mount namespace: /usr/local/bin, /var/lib and /run
 * are fresh tmpfs mounts there, and apt-get, headscale, dpkg and chown are recording stand-ins,
 * so nothing on this machine is installed or changed. curl is the real one, pointed at the
 * loopback server by a wrapper that rewrites the release host's URLs.
 */

const HEADSCALE_VERSION = versions.headscale.replace(/^v/, "");
const DEB = `headscale_${HEADSCALE_VERSION}_linux_amd64.deb`;
const TARBALL = "nebula-linux-amd64.tar.gz";

let work: string;
let server: http.Server;
let port = 0;
/** URL path → body the loopback release host serves. */
const served = new Map<string, Buffer>();
const requests: string[] = [];

function sha256(data: Buffer | string): string {
    return createHash("sha256").update(data).digest("hex");
}

function run(command: string, args: string[], options: { input?: string; cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(command, args, { encoding: "utf8", timeout: 60_000, ...options });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A nebula release tarball whose binaries print `marker` (they are shell scripts). */
function nebulaTarball(marker: string): Buffer {
    const dir = fs.mkdtempSync(path.join(work, "tarball-"));
    for (const name of ["nebula", "nebula-cert"]) {
        fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho "${name} ${marker}"\n`, { mode: 0o755 });
    }
    const out = path.join(dir, TARBALL);
    expect(run("tar", ["-czf", out, "-C", dir, "nebula", "nebula-cert"]).status).toBe(0);
    return fs.readFileSync(out);
}

function release(headscaleDeb: Buffer, headscaleListed: Buffer, tarball: Buffer, tarballListed: Buffer): void {
    served.clear();
    const headscalePath = `/juanfont/headscale/releases/download/${versions.headscale}`;
    const nebulaPath = `/slackhq/nebula/releases/download/${versions.nebula}`;
    served.set(`${headscalePath}/${DEB}`, headscaleDeb);
    served.set(
        `${headscalePath}/checksums.txt`,
        Buffer.from(`${sha256("other")}  headscale_${HEADSCALE_VERSION}_linux_arm64.deb\n${sha256(headscaleListed)}  ${DEB}\n`),
    );
    served.set(`${nebulaPath}/${TARBALL}`, tarball);
    served.set(`${nebulaPath}/SHASUM256.txt`, Buffer.from(`${sha256(tarballListed)}  ${TARBALL}\n${sha256("x")}  nebula-darwin.zip\n`));
}

function stub(bin: string, name: string, body: string): void {
    fs.writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >> "${work}/calls.log"\n${body}\n`, { mode: 0o755 });
}

beforeAll(async () => {
    if (process.getuid?.() !== 0) {
        throw new Error("the bootstrap download tests need root for a private mount namespace (CI runs as root)");
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), "sc-bootstrap-"));
    server = http.createServer((request, response) => {
        requests.push(request.url ?? "");
        const body = served.get(request.url ?? "");
        response.writeHead(body ? 200 : 404);
        response.end(body ?? "not found");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(work, { recursive: true, force: true });
});

interface Bootstrap {
    status: number | null;
    stdout: string;
    stderr: string;
    calls: string[];
    /** What /usr/local/bin/nebula says afterwards inside the sandbox. */
    nebula: string;
}

/** Runs without blocking: the loopback release host lives in this process's event loop. */
function runAsync(command: string, args: string[], timeoutMs = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (status) => {
            clearTimeout(timer);
            resolve({ status, stdout, stderr });
        });
    });
}

async function bootstrap(): Promise<Bootstrap> {
    const bin = fs.mkdtempSync(path.join(work, "bin-"));
    fs.rmSync(path.join(work, "calls.log"), { force: true });
    // The release host is the loopback server; everything else about curl is real.
    stub(bin, "curl", `args=(); for a in "$@"; do args+=("\${a/https:\\/\\/github.com/http://127.0.0.1:${port}}"); done; exec /usr/bin/curl "\${args[@]}"`);
    stub(bin, "apt-get", "exit 0");
    stub(bin, "headscale", "exit 1");
    stub(bin, "dpkg", '[ "$1" = --print-architecture ] && echo amd64');
    stub(bin, "chown", "exit 0");
    const payload = framedPayload({
        VOLUME_DEVICE: "none",
        HEADSCALE_VERSION: versions.headscale,
        NEBULA_VERSION: versions.nebula,
        LITESTREAM_VERSION: "none",
        START: "no",
    });
    fs.writeFileSync(path.join(work, "payload"), payload);
    fs.writeFileSync(path.join(work, "bootstrap.sh"), remoteScript("control/bootstrap.sh"));
    const inner = [
        "set -u",
        "mount -t tmpfs tmpfs /usr/local/bin && mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /run",
        // The nebula already installed: a replacement must leave it whole or replace it whole.
        'printf "#!/bin/sh\\necho nebula before\\n" > /usr/local/bin/nebula && chmod 755 /usr/local/bin/nebula',
        `PATH="${bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" bash "${work}/bootstrap.sh" < "${work}/payload"`,
        "status=$?",
        'echo "nebula-after: $(/usr/local/bin/nebula)"',
        "exit $status",
    ].join("\n");
    const result = await runAsync("unshare", ["-m", "--propagation", "private", "bash", "-c", inner]);
    const log = path.join(work, "calls.log");
    const nebula = /nebula-after: (.*)/.exec(result.stdout)?.[1] ?? "";
    return { ...result, calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [], nebula };
}

describe("the bootstrap's downloads", () => {
    const goodDeb = Buffer.from("a headscale package");
    let goodTarball: Buffer;
    beforeAll(() => {
        goodTarball = nebulaTarball("v-good");
    });

    it("refuses a tampered Headscale package before installing anything", async () => {
        release(Buffer.from("a tampered headscale package"), goodDeb, goodTarball, goodTarball);
        const result = await bootstrap();
        expect(result.status).toBe(1);
        expect(result.stderr).toContain(
            `bootstrap: headscale ${HEADSCALE_VERSION}: the download's sha256 ${sha256("a tampered headscale package")} is not the release's ${sha256(goodDeb)}; refusing to install it`,
        );
        expect(result.calls.some((call) => call.startsWith("apt-get"))).toBe(false);
        expect(result.nebula).toBe("nebula before");
        expect(requests).toContain(`/juanfont/headscale/releases/download/${versions.headscale}/checksums.txt`);
    });

    it("refuses a tampered Nebula tarball and leaves the installed nebula as it was", async () => {
        release(goodDeb, goodDeb, nebulaTarball("v-tampered"), goodTarball);
        const result = await bootstrap();
        expect(result.status).toBe(1);
        expect(result.stderr).toContain(`bootstrap: nebula ${versions.nebula}: the download's sha256`);
        expect(result.stderr).toContain("refusing to install it");
        expect(result.nebula).toBe("nebula before");
    });

    it("refuses an artifact the release's checksums do not list", async () => {
        release(goodDeb, goodDeb, goodTarball, goodTarball);
        const headscalePath = `/juanfont/headscale/releases/download/${versions.headscale}`;
        served.set(`${headscalePath}/checksums.txt`, Buffer.from(`${sha256(goodDeb)}  headscale_${HEADSCALE_VERSION}_linux_arm64.deb\n`));
        const result = await bootstrap();
        expect(result.status).toBe(1);
        expect(result.stderr).toContain(`the release's checksums list no ${DEB}; refusing to install it`);
        expect(result.calls.some((call) => call.startsWith("apt-get"))).toBe(false);
    });

    it("installs both when they match the release's checksums, with dpkg keeping our config", async () => {
        release(goodDeb, goodDeb, goodTarball, goodTarball);
        const result = await bootstrap();
        expect(result.stderr).toBe("");
        expect(result.status).toBe(0);
        const install = result.calls.find((call) => call.startsWith("apt-get"));
        expect(install).toContain("-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold");
        expect(install).toMatch(new RegExp(`${DEB}$`));
        expect(result.nebula).toBe("nebula v-good");
    });
});

/** The dpkg options the bootstrap passes through apt-get, read from the script itself. */
function bootstrapDpkgOptions(): string[] {
    const options = [...scriptFile("control/bootstrap.sh").matchAll(/Dpkg::Options::=(--force-[a-z]+)/g)].map((match) => match[1]);
    expect(options.length).toBeGreaterThan(0);
    return options;
}

describe("dpkg and a config file already in place (the first boot's cloud-init wrote it)", () => {
    let deb: string;
    let root: string;
    const ours = parsePayload(
        framedPayload(
            {},
            throwawayPlan(validFleet("prod"), { now: new Date("2026-11-22T00:00:00Z"), pkiSeedHex: "4d".repeat(32) })
                .plan.control.deliveries.flatMap((delivery) => delivery.publicFiles)
                .filter((file) => file.path === "/etc/headscale/config.yaml")
                .map((file) => ({ target: file.path, mode: file.mode, content: file.content })),
        ),
    ).files[0].content;

    beforeEach(() => {
        // A package of the Headscale .deb's shape: /etc/headscale/config.yaml is a conffile.
        const build = fs.mkdtempSync(path.join(work, "deb-"));
        fs.mkdirSync(path.join(build, "DEBIAN"));
        fs.mkdirSync(path.join(build, "etc/headscale"), { recursive: true });
        fs.writeFileSync(path.join(build, "etc/headscale/config.yaml"), "# the package's example config\n");
        fs.writeFileSync(path.join(build, "DEBIAN/conffiles"), "/etc/headscale/config.yaml\n");
        fs.writeFileSync(
            path.join(build, "DEBIAN/control"),
            "Package: headscale-shape-test\nVersion: 1.0\nArchitecture: all\nMaintainer: shortcircuit tests <tests@example.invalid>\nDescription: a package shaped like headscale's .deb\n",
        );
        deb = path.join(work, "headscale-shape-test.deb");
        const built = run("dpkg-deb", ["--root-owner-group", "--build", build, deb]);
        expect(built.stderr).not.toContain("error");
        // An empty dpkg root with our config already in place.
        root = fs.mkdtempSync(path.join(work, "root-"));
        for (const dir of ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/headscale"]) {
            fs.mkdirSync(path.join(root, dir), { recursive: true });
        }
        fs.writeFileSync(path.join(root, "var/lib/dpkg/status"), "");
        fs.writeFileSync(path.join(root, "etc/headscale/config.yaml"), ours);
    });

    it("stops at the conffile prompt without the bootstrap's options (no terminal to answer it)", () => {
        const result = run("dpkg", ["--root", root, "--force-not-root", "--force-script-chrootless", "-i", deb], { input: "" });
        expect(result.status).not.toBe(0);
        expect(`${result.stdout}${result.stderr}`).toMatch(/end of file on stdin at conffile prompt/);
    });

    it("installs with them and keeps our config", () => {
        const options = bootstrapDpkgOptions();
        const result = run("dpkg", ["--root", root, "--force-not-root", "--force-script-chrootless", ...options, "-i", deb], { input: "" });
        expect(result.stderr).not.toMatch(/conffile prompt/);
        expect(result.status).toBe(0);
        expect(fs.readFileSync(path.join(root, "etc/headscale/config.yaml"), "utf8")).toBe(ours);
    });
});
