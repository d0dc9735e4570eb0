import { versions } from "../../components/versions";
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

/**
 * What `build` returns with other pinned versions in components/versions.ts (as after a version
 * bump), the pins restored before it returns.
 */
export function withPinnedVersions<T>(pins: Partial<Record<keyof typeof versions, string>>, build: () => T): T {
    const pinned = versions as Record<keyof typeof versions, string>;
    for (const [tool, version] of Object.entries(pins) as [keyof typeof versions, string][]) {
        jest.replaceProperty(pinned, tool, version);
    }
    try {
        return build();
    } finally {
        jest.restoreAllMocks();
    }
}

/** Loosely typed access for mutating raw config in guard tests. */
export type Raw = any;

export { labWithExistingControlHost } from "../../scripts/lab/stack/labShape";
