/**
 * The pods the double's cluster runs, computed from the nodes and their cues (no scheduler): the
 * rollout's drain lists a node's pods and evicts them, so these are what it finds. Each answer
 * follows the real API server's (test/scripts/lab/stack/apiServer.lab.test.ts):
 * - every registered node runs ServiceLB's DaemonSet pod, kube-system/svclb-traefik-<node>, as
 *   every K3s node does;
 * - `workloadPod`: lab-apps/web-<node>, a ReplicaSet's pod; evicted, it is gone until the node
 *   is schedulable again (its ReplicaSet puts it back there);
 * - `evictionBlocked`: lab-apps/guarded, a ReplicaSet's pod whose disruption budget allows no
 *   eviction (429), read at every attempt, so lifting the cue lets the next attempt through;
 * - `unmanagedPod`: lab-apps/bare-<node>, a pod no controller owns (drain refuses it without --force).
 */
import { loadCue } from "./host";
import type { NodeRecord } from "./types";

export interface LabPod {
    namespace: string;
    name: string;
    nodeName: string;
    controllerKind: "DaemonSet" | "ReplicaSet" | null;
    /** Refused with 429 while its budget allows no eviction. */
    budgetBlocked: boolean;
}

/** The pod the evictionBlocked cue guards with a disruption budget. */
export const BUDGET_GUARDED_POD = { namespace: "lab-apps", name: "guarded" } as const;

export function podsOn(rec: NodeRecord): LabPod[] {
    const cue = loadCue(rec.hostSideStateDir);
    const pods: LabPod[] = [
        { namespace: "kube-system", name: `svclb-traefik-${rec.name}`, nodeName: rec.name, controllerKind: "DaemonSet", budgetBlocked: false },
    ];
    if (cue.workloadPod) {
        pods.push({ namespace: "lab-apps", name: `web-${rec.name}`, nodeName: rec.name, controllerKind: "ReplicaSet", budgetBlocked: false });
    }
    if (cue.evictionBlocked) {
        pods.push({ ...BUDGET_GUARDED_POD, nodeName: rec.name, controllerKind: "ReplicaSet", budgetBlocked: true });
    }
    if (cue.unmanagedPod) {
        pods.push({ namespace: "lab-apps", name: `bare-${rec.name}`, nodeName: rec.name, controllerKind: null, budgetBlocked: false });
    }
    const evicted = new Set(rec.evictedPods ?? []);
    return pods.filter((pod) => !evicted.has(`${pod.namespace}/${pod.name}`));
}

/** A node made schedulable again gets its evicted pods back (their controllers recreate them). */
export function rescheduleOnto(rec: NodeRecord): void {
    if (!rec.unschedulable) delete rec.evictedPods;
}

export function podObject(pod: LabPod): Record<string, unknown> {
    const owner =
        pod.controllerKind === null
            ? {}
            : {
                  ownerReferences: [
                      {
                          apiVersion: "apps/v1",
                          kind: pod.controllerKind,
                          name: pod.controllerKind === "DaemonSet" ? "svclb-traefik" : pod.name.replace(/-[^-]*$/, ""),
                          uid: "00000000-0000-4000-8000-000000000000",
                          controller: true,
                          blockOwnerDeletion: true,
                      },
                  ],
              };
    return {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: pod.name, namespace: pod.namespace, ...owner },
        spec: { nodeName: pod.nodeName },
        status: { phase: "Running" },
    };
}
