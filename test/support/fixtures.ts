import { committedFleet } from "../../scripts/lab/stack/labShape";
import { parseFleet } from "../../stacks/validate";
import type { Fleet } from "../../stacks/schema";

/** A stack file's raw fleet object, freshly parsed so tests may mutate it. */
export function rawFleet(stack: "prod" | "lab"): Record<string, unknown> {
    return committedFleet(stack);
}

export function validFleet(stack: "prod" | "lab"): Fleet {
    return parseFleet(rawFleet(stack)).fleet;
}

/** Loosely typed access for mutating raw config in guard tests. */
export type Raw = any;

export { labWithExistingControlHost } from "../../scripts/lab/stack/labShape";
