import * as pulumi from "@pulumi/pulumi";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { splitStepStdin } from "../../components/remote/remoteCommand";

/*
 * Strict Pulumi mocks for component and program tests: every resource is recorded with its
 * type, name and inputs; any provider function call that a test did not mock throws, so a
 * component that starts calling out is noticed rather than silently fed `{}`.
 */

export interface RecordedResource {
    type: string;
    name: string;
    /** Inputs with secret wrappers removed. */
    inputs: Record<string, unknown>;
    /** Top-level input names that arrived marked secret. */
    secretInputs: string[];
    /** Names of the resources this one explicitly depends on (dependsOn and input dependencies). */
    dependsOn: string[];
    /** Name of the parent resource, if any. */
    parent?: string;
    /** The parent's full URN, if any (names alone are ambiguous: a component may share its parent's name). */
    parentUrn?: string;
    /** The parent URN of each alias spec (`aliases: [{ parent }]`): where an older program put this resource. */
    aliasParentUrns: string[];
    protect: boolean;
    /** The replacement deletes this resource before creating the new one. */
    deleteBeforeReplace: boolean;
    /** The `import` resource option: the id of the existing object to adopt, or "". */
    importId: string;
    /** The `ignoreChanges` resource option. */
    ignoreChanges: string[];
    additionalSecretOutputs: string[];
    id: string;
    provider?: string;
}

export type OutputsFor = (resource: { type: string; name: string; inputs: Record<string, unknown> }) => Record<string, unknown> | undefined;
export type CallHandler = (args: pulumi.runtime.MockCallArgs) => Record<string, unknown> | undefined;

export interface StrictMocksOptions {
    project?: string;
    stack?: string;
    preview?: boolean;
    /** Extra output properties per resource (for example a droplet's ipv4Address). */
    outputs?: OutputsFor;
    /** Handles the provider calls a test expects; anything else throws. */
    calls?: CallHandler;
}

const TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey";
const TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert";
/** A real (throwaway) self-signed certificate, returned as every SelfSignedCert's certPem. */
const MOCK_CERT_PEM = readFileSync(join(__dirname, "../fixtures/mock-self-signed.crt"), "utf8");
/** The shape of /etc/rancher/k3s/k3s.yaml, pointing at 127.0.0.1 as k3s writes it. */
const MOCK_KUBECONFIG = [
    "apiVersion: v1",
    "clusters:",
    "- cluster:",
    "    certificate-authority-data: TU9DSw==",
    "    server: https://127.0.0.1:6443",
    "  name: default",
    "contexts:",
    "- context: {cluster: default, user: default}",
    "  name: default",
    "current-context: default",
    "kind: Config",
    "users:",
    "- name: default",
    "  user: {client-certificate-data: TU9DSw==, client-key-data: TU9DSw==}",
    "",
].join("\n");
/** The marker Pulumi's wire format puts on a secret value: `{ [SECRET_SIG]: SECRET_VALUE, value }`. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

function isSecretWrapper(value: unknown): value is { value: unknown } {
    return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE;
}

function unwrapSecrets(value: unknown): unknown {
    if (isSecretWrapper(value)) {
        return unwrapSecrets(value.value);
    }
    if (Array.isArray(value)) {
        return value.map(unwrapSecrets);
    }
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, unwrapSecrets(inner)]));
    }
    return value;
}
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * What the tls provider would return for an ED25519 `tls.PrivateKey`: a real key, derived
 * from the resource name so a re-run of the program sees the same key, as it would from state.
 */
function mockEd25519PrivateKey(name: string): Record<string, string> {
    const seed = createHash("sha256").update(`shortcircuit-mock-key:${name}`).digest();
    const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    const privateKeyPemPkcs8 = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    return {
        privateKeyPem: privateKeyPemPkcs8,
        privateKeyPemPkcs8,
        publicKeyPem: createPublicKey(privateKey).export({ format: "pem", type: "spki" }).toString(),
    };
}

/** A P-256 key as the tls provider returns it (random: nothing in the tests pins it). */
function mockEcdsaPrivateKey(): Record<string, string> {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const privateKeyPem = privateKey.export({ format: "pem", type: "sec1" }).toString();
    return {
        privateKeyPem,
        privateKeyPemPkcs8: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
        publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
    };
}

/** Outputs the real providers compute and the program reads; inputs are echoed for the rest. */
function mockProviderOutputs(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
    if (type === TLS_PRIVATE_KEY && inputs.algorithm === "ED25519") {
        return {
            ...mockEd25519PrivateKey(name),
            publicKeyOpenssh: `ssh-ed25519 MOCK${name}`,
            privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\nmock ${name}\n-----END OPENSSH PRIVATE KEY-----\n`,
        };
    }
    if (type === TLS_PRIVATE_KEY && inputs.algorithm === "ECDSA") {
        return mockEcdsaPrivateKey();
    }
    if (type === TLS_SELF_SIGNED_CERT) {
        return { certPem: MOCK_CERT_PEM };
    }
    if (type === "command:remote:Command") {
        // What the command prints on a real host; the edge reads k3s's kubeconfig this way.
        const readsKubeconfig = String(inputs.create).includes(" edge/read-kubeconfig.sh ");
        return { stdout: readsKubeconfig ? MOCK_KUBECONFIG : "", stderr: "" };
    }
    if (type === "digitalocean:index/reservedIp:ReservedIp") {
        return { ipAddress: "203.0.113.50" };
    }
    if (type === "digitalocean:index/sshKey:SshKey") {
        return { fingerprint: `mock:${name}` };
    }
    if (type === "digitalocean:index/droplet:Droplet") {
        return { ipv4Address: "203.0.113.60" };
    }
    return {};
}

/** A recorded remote step split as its launcher reads it: the script, then the payload behind it. */
function recordedStep(inputs: Record<string, unknown>): { script: string; payload: string } {
    return splitStepStdin(String(inputs.create), typeof inputs.stdin === "string" ? inputs.stdin : "");
}

/** A recorded remote step's payload: its stdin without the script the launcher reads first. */
export const stepPayload = (inputs: Record<string, unknown>): string => recordedStep(inputs).payload;

/** A recorded remote step's script text, as the launcher in its `create` hands it to bash. */
export const stepScript = (inputs: Record<string, unknown>): string => recordedStep(inputs).script;

export class MockRecorder {
    readonly resources: RecordedResource[] = [];

    ofType(type: string): RecordedResource[] {
        return this.resources.filter((resource) => resource.type === type);
    }

    named(name: string): RecordedResource {
        const found = this.resources.filter((resource) => resource.name === name);
        if (found.length !== 1) {
            throw new Error(`expected one resource named ${name}, found ${found.length}: ${this.resources.map((r) => r.name).join(", ")}`);
        }
        return found[0];
    }
}

/** The resource name at the end of a URN (`urn:pulumi:stack::project::type::name`). */
function nameOfUrn(urn: string): string {
    return urn.slice(urn.lastIndexOf("::") + 2);
}

interface RegistrationOptions {
    dependsOn: string[];
    parent?: string;
    parentUrn?: string;
    aliasParentUrns: string[];
    protect: boolean;
    deleteBeforeReplace: boolean;
    importId: string;
    ignoreChanges: string[];
    additionalSecretOutputs: string[];
}

/** What the engine would see of a RegisterResourceRequest's options (the mock API hides them). */
interface RegisterResourceRequest {
    getType(): string;
    getName(): string;
    getParent(): string;
    getAliasesList(): { getSpec(): { getParenturn(): string } | undefined }[];
    getDependenciesList(): string[];
    getProtect(): boolean;
    getDeletebeforereplace(): boolean;
    getImportid(): string;
    getIgnorechangesList(): string[];
    getAdditionalsecretoutputsList(): string[];
}

export async function installStrictMocks(options: StrictMocksOptions = {}): Promise<MockRecorder> {
    const recorder = new MockRecorder();
    const pending = new Map<string, RegistrationOptions>();
    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                const wireInputs = args.inputs as Record<string, unknown>;
                const inputs = unwrapSecrets(wireInputs) as Record<string, unknown>;
                const secretInputs = Object.keys(wireInputs).filter((key) => isSecretWrapper(wireInputs[key]));
                const providerOutputs = mockProviderOutputs(args.type, args.name, inputs);
                // DigitalOcean ids are numbers; the program converts them with Number().
                const id = args.id || (args.type.startsWith("digitalocean:") ? String(100000 + recorder.resources.length) : `${args.name}-id`);
                const registration = pending.get(`${args.type}::${args.name}`) ?? {
                    dependsOn: [],
                    aliasParentUrns: [],
                    protect: false,
                    deleteBeforeReplace: false,
                    importId: "",
                    ignoreChanges: [],
                    additionalSecretOutputs: [],
                };
                recorder.resources.push({ type: args.type, name: args.name, inputs, secretInputs, id, provider: args.provider, ...registration });
                return { id, state: { ...wireInputs, ...providerOutputs, ...(options.outputs?.({ type: args.type, name: args.name, inputs }) ?? {}) } };
            },
            call(args) {
                const result = options.calls?.(args);
                if (result === undefined) {
                    throw new Error(`unmocked provider call ${args.token}(${JSON.stringify(args.inputs)})`);
                }
                return result;
            },
        },
        options.project ?? "shortcircuit",
        options.stack ?? "test",
        options.preview ?? false,
    );
    // The mock API passes only type, name and inputs to newResource; capture the options
    // (dependencies, parent, protect) from the request the SDK sends to the mock monitor.
    const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: RegisterResourceRequest, callback: unknown): unknown };
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: RegisterResourceRequest, callback: unknown) => {
        pending.set(`${req.getType()}::${req.getName()}`, {
            dependsOn: req.getDependenciesList().map(nameOfUrn),
            parent: req.getParent() ? nameOfUrn(req.getParent()) : undefined,
            parentUrn: req.getParent() || undefined,
            aliasParentUrns: req
                .getAliasesList()
                .map((alias) => alias.getSpec()?.getParenturn() ?? "")
                .filter(Boolean),
            protect: req.getProtect(),
            deleteBeforeReplace: req.getDeletebeforereplace(),
            importId: req.getImportid(),
            ignoreChanges: req.getIgnorechangesList(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        });
        return register(req, callback);
    };
    return recorder;
}

/** Sets the program's stack config as the Pulumi CLI would pass it (JSON strings, secret keys marked). */
/** Test values in the shapes the program requires; never real keys. */
export const TEST_SECRETS: Readonly<Record<string, string>> = {
    k3sToken: "K10-test-token",
    headscaleNoiseKey: `privkey:${"1a".repeat(32)}`,
    derpKey: `privkey:${"2b".repeat(32)}`,
    // Both stack files replicate Headscale's database (controlServer.replica).
    replicaAccessKeyId: "DO00TESTACCESSKEY000",
    replicaSecretAccessKey: "test+secret/access=key-0123456789abcdefghijklmn",
};

export function setStackConfig(fleet: unknown, secrets: Readonly<Record<string, string>> = TEST_SECRETS): void {
    const config: Record<string, string> = { "shortcircuit:fleet": JSON.stringify(fleet) };
    for (const [key, value] of Object.entries(secrets)) {
        config[`shortcircuit:${key}`] = value;
    }
    pulumi.runtime.setAllConfig(
        config,
        Object.keys(secrets).map((key) => `shortcircuit:${key}`),
    );
}

/** Resolves an Output in a test (mocks resolve them once registration settles). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) =>
        output.apply((value) => {
            resolve(value);
            return value;
        }),
    );
}

/** True when the Output is marked secret. */
export function isSecretOutput(output: pulumi.Output<unknown>): Promise<boolean> {
    return pulumi.isSecret(output);
}

/**
 * Waits until every outstanding registration (including dynamic-provider serialisation) has
 * finished, so a test sees the whole graph and nothing runs after the test ends.
 */
export async function settleRegistrations(): Promise<void> {
    await pulumi.runtime.disconnect();
}

export interface MockedRun<T> {
    recorder: MockRecorder;
    result?: T;
    error?: unknown;
}

/**
 * Runs `body` under strict mocks with the given stack config, in a fresh module registry:
 * everything the body imports, including @pulumi/pulumi itself, is loaded anew, so runs never
 * share runtime state. Waits for every registration before returning.
 */
export async function runUnderMocks<T>(
    options: StrictMocksOptions,
    fleet: unknown,
    body: () => Promise<T>,
    secrets?: Readonly<Record<string, string>>,
): Promise<MockedRun<T>> {
    let run: MockedRun<T> | undefined;
    await jest.isolateModulesAsync(async () => {
        const mocks = await import("./pulumiMocks");
        const recorder = await mocks.installStrictMocks(options);
        mocks.setStackConfig(fleet, secrets);
        try {
            const result = await body();
            await mocks.settleRegistrations();
            run = { recorder, result };
        } catch (error) {
            await mocks.settleRegistrations();
            run = { recorder, error };
        }
    });
    return run!;
}

/** The stack outputs index.ts's main() returns. */
export type ProgramOutputs = Awaited<ReturnType<typeof import("../../index")>>;

/** Loads index.ts and runs its main() as the language host does (to be called inside runUnderMocks). */
export async function runProgram(): Promise<ProgramOutputs> {
    const main = (await import("../../index")).default;
    // A refusal is the test's to read, not a reason to end the test process.
    return main({ exitOnRefusal: false });
}

/** Runs the program (index.ts) as `pulumi up`/`preview` would, under strict mocks. */
export async function runProgramUnderMocks(
    options: StrictMocksOptions,
    fleet: unknown,
    secrets?: Readonly<Record<string, string>>,
): Promise<{ recorder: MockRecorder; program?: ProgramOutputs; error?: unknown }> {
    const run = await runUnderMocks(options, fleet, runProgram, secrets);
    return { recorder: run.recorder, program: run.result, error: run.error };
}
