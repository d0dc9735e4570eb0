import type * as command from "@pulumi/command";
import type * as pulumi from "@pulumi/pulumi";
import { sshHost } from "../../stacks/fleet";
import type { StackSecrets } from "../../stacks/load";
import type { Fleet, FleetNode } from "../../stacks/schema";

/** How the program reaches one host over SSH. */
export interface SshConnection {
    host: string;
    user: string;
    port: number;
    /**
     * OpenSSH private key (secret). When absent the command provider uses the SSH agent at
     * SSH_AUTH_SOCK itself; the socket path is kept out of the inputs because it changes with
     * every shell, and a changed connection re-runs every command.
     */
    privateKey?: pulumi.Input<string>;
    /** Seconds per connection attempt. */
    timeoutSeconds: number;
}

export function sshConnectionFor(fleet: Fleet, node: FleetNode, secrets: StackSecrets): SshConnection {
    return {
        host: sshHost(fleet, node),
        user: node.ssh.user,
        port: node.ssh.port,
        privateKey: secrets.sshPrivateKey,
        timeoutSeconds: fleet.access.sshTimeoutSeconds,
    };
}

/** Bounded: a host that does not answer fails after three attempts of `timeoutSeconds`. */
export function connectionArgs(connection: SshConnection): command.types.input.remote.ConnectionArgs {
    return {
        host: connection.host,
        user: connection.user,
        port: connection.port,
        privateKey: connection.privateKey,
        perDialTimeout: connection.timeoutSeconds,
        dialErrorLimit: 3,
    };
}
