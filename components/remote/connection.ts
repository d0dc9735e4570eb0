import type * as command from "@pulumi/command";
import type * as pulumi from "@pulumi/pulumi";
import type { Become } from "../../stacks/schema";

/** Where a host answers SSH; plain data from the plan (the droplet's address is an Output). */
export interface SshAddress {
    host: pulumi.Input<string>;
    user: string;
    port: number;
    /** Seconds per connection attempt. */
    timeoutSeconds: number;
    /** Failed attempts before the step fails; a booting droplet needs more than a running host. */
    dialAttempts: number;
    /** How the steps there become root (remoteCommand.ts's launcher). */
    become: Become;
}

/** How a step reaches its host and becomes root there. */
export interface StepConnection {
    ssh: command.types.input.remote.ConnectionArgs;
    become: Become;
}

/**
 * OpenSSH private key (secret). When absent the command provider uses the SSH agent at
 * SSH_AUTH_SOCK itself; the socket path is kept out of the inputs because it changes with every
 * shell, and a changed connection re-runs every command.
 */
export type SshCredentials = { privateKey?: pulumi.Input<string> };

/** The one way the program reaches a host: bounded by timeoutSeconds × dialAttempts. */
export function connectionArgs(address: SshAddress, credentials: SshCredentials): StepConnection {
    return {
        ssh: {
            host: address.host,
            user: address.user,
            port: address.port,
            privateKey: credentials.privateKey,
            perDialTimeout: address.timeoutSeconds,
            dialErrorLimit: address.dialAttempts,
        },
        become: address.become,
    };
}
