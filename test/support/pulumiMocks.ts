import * as pulumi from "@pulumi/pulumi";
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";

/*
 * Strict Pulumi mocks for component and program tests: every resource is recorded with its
 * type, name and inputs; any provider function call that a test did not mock throws, so a
 * component that starts calling out is noticed rather than silently fed `{}`.
 */

export interface RecordedResource {
    type: string;
    name: string;
    inputs: Record<string, unknown>;
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

export async function installStrictMocks(options: StrictMocksOptions = {}): Promise<MockRecorder> {
    const recorder = new MockRecorder();
    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                const inputs = args.inputs as Record<string, unknown>;
                const providerOutputs = args.type === TLS_PRIVATE_KEY && inputs.algorithm === "ED25519" ? mockEd25519PrivateKey(args.name) : {};
                const id = args.id ?? `${args.name}-id`;
                recorder.resources.push({ type: args.type, name: args.name, inputs, id, provider: args.provider });
                return { id, state: { ...inputs, ...providerOutputs, ...(options.outputs?.({ type: args.type, name: args.name, inputs }) ?? {}) } };
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
    return recorder;
}

/** Sets the program's stack config as the Pulumi CLI would pass it (JSON strings, secret keys marked). */
export function setStackConfig(fleet: unknown, secrets: Record<string, string> = { k3sToken: "K10-test-token" }): void {
    const config: Record<string, string> = { "shortcircuit:fleet": JSON.stringify(fleet) };
    for (const [key, value] of Object.entries(secrets)) {
        config[`shortcircuit:${key}`] = value;
    }
    pulumi.runtime.setAllConfig(config, Object.keys(secrets).map((key) => `shortcircuit:${key}`));
}

/** Resolves an Output in a test (mocks resolve them once registration settles). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => output.apply((value) => { resolve(value); return value; }));
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

export interface ProgramRun<T> {
    recorder: MockRecorder;
    program?: T;
    error?: unknown;
}

/**
 * Runs the program (index.ts) as `pulumi up`/`preview` would, under strict mocks, with the given
 * raw fleet and secrets. Everything, including @pulumi/pulumi itself, is loaded in a fresh
 * module registry so runs never share runtime state or closure-serialisation caches.
 */
export async function runProgramUnderMocks<T = typeof import("../../index")>(
    options: StrictMocksOptions,
    fleet: unknown,
    secrets?: Record<string, string>,
): Promise<ProgramRun<T>> {
    let run: ProgramRun<T> | undefined;
    await jest.isolateModulesAsync(async () => {
        const mocks = await import("./pulumiMocks");
        const recorder = await mocks.installStrictMocks(options);
        mocks.setStackConfig(fleet, secrets);
        try {
            const program = (await import("../../index")) as T;
            await mocks.settleRegistrations();
            run = { recorder, program };
        } catch (error) {
            await mocks.settleRegistrations();
            run = { recorder, error };
        }
    });
    return run!;
}
