import type * as pulumi from "@pulumi/pulumi";
import { waitsOf, type FleetOrder, type StepId } from "./order";

/*
 * The plan's order (order.ts) turned into dependsOn: every step's first resource depends on the
 * last resource of each step the plan puts before it, and on nothing else from another step.
 */

export interface StepGate {
    /** The last resource of every step `step` waits for; each must be built already. */
    before(step: StepId): pulumi.Resource[];
    /** Records `step`'s last resource, which the steps after it wait for. */
    finish(step: StepId, last: pulumi.Resource): void;
}

export class StepWaits implements StepGate {
    private readonly finished = new Map<StepId, pulumi.Resource>();

    constructor(private readonly order: FleetOrder) {}

    before(step: StepId): pulumi.Resource[] {
        return waitsOf(this.order, step).map((edge) => {
            const last = this.finished.get(edge.after);
            if (!last) {
                throw new Error(`${step} waits for ${edge.after}, which is not built yet: the program must build steps in the plan's order`);
            }
            return last;
        });
    }

    finish(step: StepId, last: pulumi.Resource): void {
        if (this.finished.has(step)) {
            throw new Error(`${step} was built twice`);
        }
        this.finished.set(step, last);
    }
}
