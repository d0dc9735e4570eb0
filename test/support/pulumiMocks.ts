import * as pulumi from "@pulumi/pulumi";

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
                const id = args.id ?? `${args.name}-id`;
                recorder.resources.push({ type: args.type, name: args.name, inputs, id, provider: args.provider });
                return { id, state: { ...inputs, ...(options.outputs?.({ type: args.type, name: args.name, inputs }) ?? {}) } };
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
