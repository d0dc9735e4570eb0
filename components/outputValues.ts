import * as pulumi from "@pulumi/pulumi";
import type { Values } from "./hostPlan";

/** The plan's values in the program: identity content is an Output, secret where its inputs are. */
export const outputValues: Values<pulumi.Output<string>> = {
    text: (value) => pulumi.output(value),
    derive: (inputs, compute) => pulumi.all([...inputs]).apply((texts: string[]) => compute(texts)),
};
