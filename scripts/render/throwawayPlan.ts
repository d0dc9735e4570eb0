import { createHash } from "node:crypto";
import type { Fleet } from "../../stacks/schema";
import { plainValues } from "../../components/hostPlan";
import { throwawayPki } from "../../components/nebula/issuance";
import { identityRequirements, planFleet, type FleetPlan } from "../../components/plan";

/*
 * The plan (components/plan.ts) with throwaway identities derived from one seed: what `render` writes
 * (files.ts) and what the offline tests deliver. The real identities live in
 * Pulumi state and stack secrets.
 */

export interface ThrowawayPlanOptions {
    /** The clock certificates are issued against. */
    now: Date;
    /** 64 hex chars: reproduces the throwaway identities byte for byte. Random when absent. */
    pkiSeedHex?: string;
}

/** The plan with throwaway identities derived from one seed. */
export function throwawayPlan(fleet: Fleet, options: ThrowawayPlanOptions): { plan: FleetPlan<string>; seedHex: string } {
    const needs = identityRequirements(fleet);
    const pki = throwawayPki(fleet, needs.nebulaMembers, options.now, options.pkiSeedHex);
    const derive = (label: string): string => createHash("sha256").update(`${pki.seedHex}:${label}`).digest("hex");
    const plan = planFleet(
        fleet,
        {
            nebulaCaCertPem: pki.trustBundlePem,
            nebula: Object.fromEntries(pki.members),
            headscaleNoiseKey: `privkey:${derive("noise")}`,
            derpKey: `privkey:${derive("derp")}`,
            k3sToken: `throwaway-${derive("k3s-token")}`,
            relayCerts: Object.fromEntries(
                needs.selfSignedRelays.map((relay) => [
                    relay.host,
                    {
                        certPem: "# throwaway: the relay's self-signed certificate is issued by the program and kept in Pulumi state\n",
                        keyPem: "# throwaway: the relay's key is kept in Pulumi state\n",
                    },
                ]),
            ),
            relayCertNames: {},
            // render never holds the operator's S3 keys: placeholders mark where they go.
            ...(fleet.controlServer.replica
                ? { replica: { accessKeyId: "throwaway-replica-access-key-id", secretAccessKey: "throwaway-replica-secret-access-key" } }
                : {}),
        },
        plainValues,
    );
    return { plan, seedHex: pki.seedHex };
}
