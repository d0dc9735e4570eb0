/**
 * kubectl: the admin's on an active server (else "connection refused"), an agent's kubelet's
 * credentials on an agent; one verb per call.
 */
import * as fs from "node:fs";
import { AGENT_KUBELET_KUBECONFIG } from "./constants";
import { loadState } from "./host";
import { hangOnUnansweringApi, metaTargetNames, namesPods, nodeNames, parseKubectl } from "./kubectlArgs";
import { kubectlCordon, kubectlDrain, kubectlGet, kubectlMeta, kubectlPatch, kubectlWait } from "./kubectlVerbs";
import { allNodes, getNode, liveness, nodeFile } from "./nodes";
import { isEviction, kubectlEviction, kubectlGetPods } from "./podVerbs";
import type { DoubleHostConfig } from "./types";
import { fail, say, unsupported, withLock } from "./util";

export function kubectl(host: DoubleHostConfig, argv: string[]): number {
    const { positional, flags } = parseKubectl(argv);
    const [verb, ...rest] = positional;
    hangOnUnansweringApi(host, flags);
    if (host.role !== "server") {
        // An agent has no admin kubeconfig; its kubelet's credentials reach the API through the
        // agent's local load balancer (127.0.0.1:6444).
        if (flags.get("--kubeconfig") !== AGENT_KUBELET_KUBECONFIG)
            fail(1, "The connection to the server localhost:8080 was refused - did you specify the right host or port?");
        if (loadState(host).status !== "active") fail(1, "The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?");
        if (!allNodes(host).some((n) => n.role === "server" && liveness(n).status === "active")) {
            fail(1, "The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?");
        }
        const self = loadState(host).nodeName ?? host.hostName;
        const forbidden = (what: string): never => fail(1, `Error from server (Forbidden): ${what}`);
        // Kubernetes 1.33's Node authorizer and NodeRestriction, as the real API server answers
        // them (test/scripts/lab/stack/apiServer.lab.test.ts): a node reads its own Node object
        // only, by name (kubectl reads before it writes), and may cordon, annotate and patch it.
        const ownNodeOnly = (names: string[]): void => {
            const other = names.find((name) => name !== self);
            if (other !== undefined)
                forbidden(
                    `nodes "${other}" is forbidden: User "system:node:${self}" cannot get resource "nodes" in API group "" at the cluster scope: node '${self}' cannot read '${other}', only its own Node object`,
                );
        };
        switch (verb) {
            case "get":
            case "wait": {
                if (flags.get("--raw") !== undefined) return kubectlGet(host, rest, flags);
                if (verb === "get" && namesPods(rest)) return kubectlGetPods(host, flags, self);
                const names = nodeNames(rest, false);
                if (names.length === 0 && verb === "get")
                    forbidden(
                        `nodes is forbidden: User "system:node:${self}" cannot list resource "nodes" in API group "" at the cluster scope: node '${self}' cannot read all nodes, only its own Node object`,
                    );
                ownNodeOnly(names);
                return verb === "wait" ? kubectlWait(host, rest, flags) : kubectlGet(host, rest, flags);
            }
            case "cordon":
            case "uncordon": {
                const names = nodeNames(rest);
                ownNodeOnly(names);
                return kubectlCordon(host, verb, names, true);
            }
            case "annotate":
                ownNodeOnly(metaTargetNames(rest));
                return kubectlMeta(host, verb, rest, flags);
            case "patch":
                ownNodeOnly(nodeNames(rest));
                return kubectlPatch(host, rest, flags);
            case "create": {
                const raw = flags.get("--raw") ?? "";
                if (isEviction(raw)) return kubectlEviction(host, raw, flags, self);
                return forbidden(`k3s-test-double: kubectl create ${JSON.stringify(rest.join(" "))} is not simulated for a node's own credentials`);
            }
            default:
                return forbidden(
                    `nodes is forbidden: User "system:node:${self}" cannot ${verb ?? "use"} resource "nodes" (k3s-test-double: not simulated for a node's own credentials)`,
                );
        }
    }
    // The API server lives on servers only, and only while k3s runs.
    if (loadState(host).status !== "active") fail(1, "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?");
    switch (verb) {
        case "get":
            return namesPods(rest) ? kubectlGetPods(host, flags, null) : kubectlGet(host, rest, flags);
        case "create": {
            const raw = flags.get("--raw");
            if (raw === undefined) return unsupported(`kubectl create ${JSON.stringify(rest.join(" "))} (only pod evictions through --raw are simulated)`);
            return kubectlEviction(host, raw, flags, null);
        }
        case "wait":
            return kubectlWait(host, rest, flags);
        case "cordon":
        case "uncordon":
            return kubectlCordon(host, verb, nodeNames(rest), true);
        case "drain":
            return kubectlDrain(host, nodeNames(rest), flags);
        case "annotate":
        case "label":
            return kubectlMeta(host, verb, rest, flags);
        case "patch":
            return kubectlPatch(host, rest, flags);
        case "delete": {
            const names = nodeNames(rest);
            withLock(host.clusterDir, () => {
                for (const n of names) {
                    getNode(host, n);
                    fs.rmSync(nodeFile(host, n), { force: true });
                    say(`node "${n}" deleted`);
                }
            });
            return 0;
        }
        default:
            return unsupported(`kubectl invocation ${JSON.stringify(argv.join(" "))}`);
    }
}
