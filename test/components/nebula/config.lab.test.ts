import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { certValidityAt } from "../../../components/nebula/issuance";
import { hostFilePath, renderFleetFiles, type RenderedFiles } from "../../../scripts/render/files";
import { NEBULA_FILES, renderNebulaConfig } from "../../../components/nebula/config";
import { nebulaMembers, type NebulaMember } from "../../../stacks/nebulaMembers";
import type { Fleet } from "../../../stacks/schema";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";
import { printNebulaCert as printCert } from "../../support/nebulaCertCli";
import { isAlive, runTool, type ToolResult } from "../../support/processes";

/*
 * The Nebula files the program renders, checked with Debian's real tools (nebula 1.6.1):
 * `nebula-cert verify` / `print -json` on every member's certificate and `nebula -test` on every
 * member's config, for both stacks. Needs no root and sends nothing: every static_host_map
 * endpoint is a TEST-NET-1 literal (nebula -test resolves names, and only parses addresses).
 * A missing tool fails the suite with a pointer to scripts/setup.sh; it never skips.
 */

const SETUP_HINT = "is not on PATH: run scripts/setup.sh (it installs Debian's `nebula` package; CI runs it first)";
const DAY_MS = 86_400_000;
const SEED = "5c".repeat(32);
const OTHER_SEED = "a3".repeat(32);
const STACKS = ["prod", "lab"] as const;
type Stack = (typeof STACKS)[number];

/*
 * The clock certificates are issued against: fixed for the whole run (renders are compared byte
 * for byte) but taken from today's date. nebula-cert verify and nebula check validity against
 * the real clock and have no flag to move it, so a hard-coded date would turn this suite red
 * once the validity cycle it falls in ends.
 */
const NOW = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);

/** Runs a tool synchronously (bounded); a missing binary is a failure naming scripts/setup.sh. */
function tool(command: string, args: string[]): ToolResult {
    return runTool(command, args, SETUP_HINT);
}

function expectSuccess(result: ToolResult, what: string): string {
    if (result.status !== 0) {
        throw new Error(`${what} exited ${result.status}:\n${result.output}`);
    }
    return result.output;
}

/** nebula logs some config problems at error level and still exits 0 in -test mode. */
function errorLogLines(output: string): string[] {
    return output.split("\n").filter((line) => /level=(error|fatal|panic)/.test(line));
}

/** Temp dirs of earlier runs that crashed before their afterAll (their pid is gone). */
function removeStaleTempDirs(prefix: string): void {
    for (const entry of fs.readdirSync(os.tmpdir())) {
        const match = new RegExp(`^${prefix}(\\d+)-`).exec(entry);
        if (match && Number(match[1]) !== process.pid && !isAlive(Number(match[1]))) {
            fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
        }
    }
}

function nebulaFile(member: string, file: keyof typeof NEBULA_FILES): string {
    return hostFilePath(member, NEBULA_FILES[file]);
}

function rendered(files: RenderedFiles, relativePath: string): string {
    const content = files.get(relativePath)?.content;
    if (content === undefined) {
        throw new Error(`the render has no ${relativePath}`);
    }
    return content;
}

/** Writes a member's rendered ca.crt, host.crt and host.key into `dir`. */
function writePki(dir: string, files: RenderedFiles, member: string): void {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "ca.crt"), rendered(files, nebulaFile(member, "ca")));
    fs.writeFileSync(path.join(dir, "host.crt"), rendered(files, nebulaFile(member, "cert")));
    fs.writeFileSync(path.join(dir, "host.key"), rendered(files, nebulaFile(member, "key")), { mode: 0o600 });
}

function render(fleet: Fleet, seed = SEED): RenderedFiles {
    return renderFleetFiles(fleet, { now: NOW, pkiSeedHex: seed }).files;
}

const TEMP_PREFIX = "scneb-tools-";
let tmp = "";

beforeAll(() => {
    removeStaleTempDirs(TEMP_PREFIX);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
});

afterAll(() => {
    if (tmp) {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
});

it("has Debian's nebula and nebula-cert on PATH", () => {
    expect(expectSuccess(tool("nebula", ["-version"]), "nebula -version")).toMatch(/Version: \d+\.\d+\.\d+/);
    expect(expectSuccess(tool("nebula-cert", ["-version"]), "nebula-cert -version")).toMatch(/Version: \d+\.\d+\.\d+/);
});

describe.each(STACKS)("the %s stack's Nebula files", (stack: Stack) => {
    const fleet = validFleet(stack);
    const members = nebulaMembers(fleet);
    const policy = fleet.overlays.nebula.pki;
    const caNotBefore = new Date(`${policy.caIssuedOn}T00:00:00Z`);
    const caNotAfter = new Date(caNotBefore.getTime() + policy.caValidityDays * DAY_MS);
    const memberNames = members.map((member) => member.name);
    const member = (name: string): NebulaMember => members.find((m) => m.name === name) as NebulaMember;
    const lighthouseIps = new Map(members.filter((m) => m.lighthouse).map((m, i) => [m.name, `192.0.2.${i + 1}`]));
    const testEndpoint = (light: NebulaMember): string => `${lighthouseIps.get(light.name)}:${fleet.overlays.nebula.listenPort}`;

    let files: RenderedFiles;
    let dir = "";
    let caFingerprint = "";
    const memberDir = (name: string): string => path.join(dir, name);

    beforeAll(() => {
        dir = path.join(tmp, stack);
        files = render(fleet);
        for (const name of memberNames) {
            writePki(memberDir(name), files, name);
        }
        caFingerprint = printCert(path.join(memberDir(memberNames[0]), "ca.crt")).fingerprint;
    });

    it("renders a CA the tools read, valid now by the real clock (the tools check against it)", () => {
        expect(NOW.getTime()).toBeGreaterThanOrEqual(caNotBefore.getTime());
        expect(NOW.getTime()).toBeLessThan(caNotAfter.getTime());
        const ca = printCert(path.join(memberDir(memberNames[0]), "ca.crt"));
        expect(ca.details.isCa).toBe(true);
        expect(new Date(ca.details.notBefore)).toEqual(caNotBefore);
        expect(new Date(ca.details.notAfter)).toEqual(caNotAfter);
        expect(ca.fingerprint).toBe(caFingerprint);
        expect(caFingerprint).toMatch(/^[0-9a-f]{64}$/);
        // Every member gets the same CA.
        const cas = new Set(memberNames.map((name) => rendered(files, nebulaFile(name, "ca"))));
        expect(cas.size).toBe(1);
    });

    it.each(memberNames)("%s: nebula-cert verify passes and print shows the member's name, ip, groups, validity and issuer", (name) => {
        const m = member(name);
        const ca = path.join(memberDir(name), "ca.crt");
        const crt = path.join(memberDir(name), "host.crt");
        expectSuccess(tool("nebula-cert", ["verify", "-ca", ca, "-crt", crt]), `nebula-cert verify -ca ${ca} -crt ${crt}`);
        const printed = printCert(crt);
        const validity = certValidityAt({ notBefore: caNotBefore, notAfter: caNotAfter }, policy, NOW);
        expect(printed.details.name).toBe(m.name);
        expect(printed.details.ips).toEqual([m.addressWithPrefix]);
        expect(printed.details.subnets).toEqual([]);
        expect([...(printed.details.groups ?? [])].sort()).toEqual([...m.groups].sort());
        expect(new Date(printed.details.notBefore)).toEqual(validity.notBefore);
        expect(new Date(printed.details.notAfter)).toEqual(validity.notAfter);
        expect(printed.details.isCa).toBe(false);
        expect(printed.details.issuer).toBe(caFingerprint);
    });

    it.each(memberNames)("%s: nebula -test accepts the config with its rendered ca, cert and key", (name) => {
        const m = member(name);
        const config = renderNebulaConfig(fleet, members, m, { pkiDir: memberDir(name), endpointOverride: testEndpoint });
        const configPath = path.join(memberDir(name), "config.yml");
        fs.writeFileSync(configPath, stringifyYaml(config));
        const output = expectSuccess(tool("nebula", ["-test", "-config", configPath]), `nebula -test -config ${configPath}`);
        expect(errorLogLines(output)).toEqual([]);

        // What was tested is what ships, except the pki paths and the lighthouse endpoints.
        const shipped = parseYaml(rendered(files, nebulaFile(name, "config"))) as Record<string, any>;
        expect(Object.keys(config.static_host_map as object)).toEqual(Object.keys(shipped.static_host_map));
        expect({ ...config, pki: shipped.pki, static_host_map: shipped.static_host_map }).toEqual(shipped);
    });

    it("renders byte for byte the same files from the same seed, clock and fleet", () => {
        const again = render(validFleet(stack));
        const differing = memberNames.flatMap((name) =>
            (["ca", "cert", "key", "config"] as const)
                .map((file) => nebulaFile(name, file))
                .filter((file) => again.get(file)?.content !== rendered(files, file)),
        );
        expect(differing).toEqual([]);
    });

    it("issues a different CA, keys and certificates from a different seed (configs unchanged)", () => {
        const other = render(fleet, OTHER_SEED);
        for (const name of memberNames) {
            for (const file of ["ca", "cert", "key"] as const) {
                expect(rendered(other, nebulaFile(name, file))).not.toBe(rendered(files, nebulaFile(name, file)));
            }
            expect(rendered(other, nebulaFile(name, "config"))).toBe(rendered(files, nebulaFile(name, "config")));
        }
    });

    it("fails nebula-cert verify for a certificate checked against another seed's CA", () => {
        const otherDir = path.join(dir, "other-seed");
        const name = memberNames[memberNames.length - 1];
        writePki(otherDir, render(fleet, OTHER_SEED), name);
        const result = tool("nebula-cert", ["verify", "-ca", path.join(otherDir, "ca.crt"), "-crt", path.join(memberDir(name), "host.crt")]);
        expect(result.status).not.toBe(0);
        expect(result.output).toMatch(/could not find ca for the certificate/);
        // And the other seed's certificate against its own CA passes: the failure is the CA.
        expectSuccess(
            tool("nebula-cert", ["verify", "-ca", path.join(otherDir, "ca.crt"), "-crt", path.join(otherDir, "host.crt")]),
            "nebula-cert verify (other seed)",
        );
    });

    it("changes only that member's host.crt when a member gains a Nebula group", () => {
        const raw: Raw = rawFleet(stack);
        const target = raw.nodes.find((node: Raw): boolean => node.nebula !== undefined && node.nebula.lighthouse !== true);
        target.nebula.groups = [...(target.nebula.groups ?? []), "extra"];
        const changed = render(parseFleet(raw).fleet);
        const allPaths = [...new Set([...files.keys(), ...changed.keys()])].sort();
        const differing = allPaths.filter((file) => changed.get(file)?.content !== files.get(file)?.content);
        const certPath = nebulaFile(target.name as string, "cert");
        expect(differing).toEqual([certPath]);

        const changedDir = path.join(dir, "extra-group");
        writePki(changedDir, changed, target.name as string);
        expectSuccess(
            tool("nebula-cert", ["verify", "-ca", path.join(changedDir, "ca.crt"), "-crt", path.join(changedDir, "host.crt")]),
            "nebula-cert verify (extra group)",
        );
        expect(printCert(path.join(changedDir, "host.crt")).details.groups).toContain("extra");
    });
});
