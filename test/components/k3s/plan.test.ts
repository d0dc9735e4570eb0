import { parsePayload } from "../../../components/remote/payload";
import { plainValues } from "../../../components/hostPlan";
import { REMOTE_LIBRARIES, REMOTE_SCRIPTS, scriptFile } from "../../../components/remote/scripts";
import { planK3sNodes } from "../../../components/k3s/plan";
import { validFleet } from "../../support/fixtures";

/*
 * The plan owns every path a K3s step touches on a node and the unit it restarts: the scripts
 * receive them as parameters, and drift (scripts/drift/expect.ts) reads them from the same plan.
 */

const K3S_SCRIPTS = REMOTE_SCRIPTS.filter((script) => script.startsWith("k3s/"));

describe.each(["prod", "lab"] as const)("the %s fleet's K3s node plans", (stack) => {
    const plans = planK3sNodes(validFleet(stack), plainValues, "token");

    it("carry the unit and every path, and the steps' payloads pass them on", () => {
        for (const plan of plans) {
            const apply = parsePayload(plan.payloads.apply).params;
            expect(apply).toMatchObject({
                UNIT: plan.unit,
                CONFIG_PATH: plan.paths.config,
                RECORD_PATH: plan.paths.rolloutRecord,
                SAN_DROPIN_PATH: plan.paths.sanDropIn,
                PENDING_PATH: plan.paths.applyPending,
                LOCK_PATH: plan.paths.applyLock,
                KUBECONFIG: plan.paths.kubeconfig,
            });
            expect(parsePayload(plan.payloads.prepare).params).toMatchObject({ TOKEN_PATH: plan.paths.token });
            expect(plan.files.map((file) => file.path)).toEqual([plan.paths.token, plan.paths.config, plan.paths.rolloutRecord]);
        }
    });

    it.each([...K3S_SCRIPTS, ...REMOTE_LIBRARIES.filter((library) => library.startsWith("k3s/"))])(
        "%s spells none of the paths or units the plan owns",
        (script) => {
            const text = scriptFile(script);
            const owned = new Set(
                plans.flatMap((plan) => [...(Object.values(plan.paths) as string[]).filter((value) => value !== ""), `${plan.unit}.service`]),
            );
            for (const value of owned) {
                expect({ script, spells: text.includes(value) ? value : undefined }).toEqual({ script, spells: undefined });
            }
            // Nor any path under k3s's own directories, owned by the plan or not.
            expect(text).not.toMatch(/\/etc\/rancher|\/var\/lib\/rancher/);
            expect(text).not.toMatch(/systemctl \w+ ("?)k3s/);
        },
    );
});
