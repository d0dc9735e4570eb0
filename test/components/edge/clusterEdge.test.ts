import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { runProgramUnderMocks, type MockRecorder } from "../../support/pulumiMocks";
import { rawFleet } from "../../support/fixtures";
import { formatProblem, validateFleet } from "../../../stacks/validate";

let recorder: MockRecorder;
beforeAll(async () => {
    const run = await runProgramUnderMocks({ stack: "prod" }, rawFleet("prod"));
    expect(run.error).toBeUndefined();
    recorder = run.recorder;
});

const edgeResources = (): { name: string; type: string; provider?: string }[] =>
    recorder.resources.filter(
        (resource) => resource.name.startsWith("edge-") && resource.type.startsWith("kubernetes:") && resource.type !== "pulumi:providers:kubernetes",
    );

describe("ClusterEdge under strict mocks", () => {
    it("applies every object through the one explicit provider", () => {
        const objects = edgeResources();
        expect(objects.map((object) => object.name).sort()).toEqual(
            [
                "edge-ns-adsb",
                "edge-ns-networking",
                "edge-helmchartconfig-kube-system-traefik",
                "edge-middleware-networking-networking-auth-internal",
                "edge-middleware-networking-networking-strip-adsb",
                "edge-service-adsb-adsb-aus",
                "edge-endpointslice-adsb-adsb-aus",
                "edge-service-adsb-adsb-lax",
                "edge-endpointslice-adsb-adsb-lax",
                "edge-service-adsb-adsb-hnd",
                "edge-endpointslice-adsb-adsb-hnd",
            ].sort(),
        );
        for (const object of objects) {
            expect(object.provider).toMatch(/::edge-provider::/);
        }
        expect(recorder.named("edge-provider").type).toBe("pulumi:providers:kubernetes");
        expect(recorder.named("edge-provider").secretInputs).toContain("kubeconfig");
    });

    it("reads the kubeconfig from the genesis by a command that depends only on the genesis, after the rollout", () => {
        const kubeconfig = recorder.named("edge-kubeconfig");
        expect(kubeconfig.inputs.connection).toMatchObject({ host: "10.67.1.1" });
        expect(kubeconfig.inputs.triggers).toEqual(["10.67.1.1", "https://100.67.0.1:6443"]);
        expect(kubeconfig.additionalSecretOutputs).toContain("stdout");
        expect(kubeconfig.dependsOn).toEqual(["k3s-toa-fwd-gpu-01-apply"]);
        expect(JSON.stringify(kubeconfig.inputs)).not.toContain("config.yaml");
    });

    it("makes every Middleware depend on the Traefik HelmChartConfig", () => {
        for (const name of ["edge-middleware-networking-networking-auth-internal", "edge-middleware-networking-networking-strip-adsb"]) {
            expect(recorder.named(name).dependsOn).toContain("edge-helmchartconfig-kube-system-traefik");
        }
    });

    it("keeps shared namespaces on delete", () => {
        expect(recorder.named("edge-ns-networking").type).toBe("kubernetes:core/v1:Namespace");
    });

    it("refreshes before every run, so a Middleware a chart upgrade wiped is recreated", () => {
        const project = parseYaml(readFileSync(join(__dirname, "../../../Pulumi.yaml"), "utf8")) as { options?: { refresh?: string } };
        expect(project.options?.refresh).toBe("always");
    });
});

describe("edge config errors", () => {
    const errors = (mutate: (fleet: Record<string, any>) => void): string[] => {
        const raw = rawFleet("prod");
        mutate(raw);
        return validateFleet(raw)
            .problems.filter((p) => p.severity === "error")
            .map(formatProblem);
    };

    it("rejects a middleware of an unknown kind", () => {
        expect(
            errors((fleet) => {
                fleet.edge.middlewares.push({ name: "redirect", namespace: "networking", redirectScheme: { scheme: "https" } });
            }),
        ).toEqual(['fleet.edge.middlewares[2]: unknown key "redirectScheme"']);
    });

    it("rejects an endpoint host with no address on the cluster's overlay", () => {
        expect(
            errors((fleet) => {
                delete fleet.nodes.find((node: { name: string }) => node.name === "lax-adsb-01").tailnet;
            }),
        ).toEqual([
            "fleet.edge.externalServices[1].hosts[0]: lax-adsb-01 has no tailnet address: endpoints live on the overlay the cluster uses, so it would be an endpoint outside every overlay the cluster reaches",
        ]);
    });
});
