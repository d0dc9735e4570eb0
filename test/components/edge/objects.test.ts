import Ajv, { type ValidateFunction } from "ajv";
import Ajv2020 from "ajv/dist/2020";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { rewriteKubeconfigServer } from "../../../components/edge/clusterEdge";
import {
    SERVICELB_TOLERATIONS_ANNOTATION,
    assertNoHostNetworkTailscale,
    edgeObjects,
    renderClusterEdge,
    renderExternalServices,
    renderMiddlewares,
    renderTraefikHelmChartConfig,
    serviceLbTolerations,
    traefikValues,
    withServiceLbTolerations,
    type K8sObject,
} from "../../../components/edge/objects";
import { parseFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";

const SCHEMAS = join(__dirname, "../../../../shared/schemas");
const prod = validFleet("prod");

/** The openAPIV3Schema of a CRD's served version, compiled with a real JSON-schema validator. */
function crdValidator(file: string): ValidateFunction {
    const crd = parseYaml(readFileSync(join(SCHEMAS, file), "utf8")) as { spec: { versions: { served: boolean; schema: { openAPIV3Schema: object } }[] } };
    const version = crd.spec.versions.find((each) => each.served)!;
    // Kubernetes' structural-schema extensions (x-kubernetes-*) are not JSON-schema keywords,
    // and OpenAPI's numeric formats only annotate a type the schema already checks.
    const ajv = new Ajv({ strict: false, allErrors: true });
    for (const format of ["int32", "int64"]) {
        ajv.addFormat(format, true);
    }
    return ajv.compile(version.schema.openAPIV3Schema);
}

function chartValuesValidator(): ValidateFunction {
    const schema = JSON.parse(readFileSync(join(SCHEMAS, "traefik-chart-41.3.0.values.schema.json"), "utf8")) as object;
    return new Ajv2020({ strict: false, allErrors: true }).compile(schema);
}

describe("Traefik HelmChartConfig", () => {
    it("allows ExternalName services on both providers and carries ServiceLB tolerations for every taint", () => {
        expect(serviceLbTolerations(prod)).toEqual([{ key: "amd.com/gpu", operator: "Equal", value: "true", effect: "NoSchedule" }]);
        const values = parseYaml(renderTraefikHelmChartConfig(prod).spec.valuesContent) as Record<string, unknown>;
        expect(values).toEqual({
            providers: { kubernetesIngress: { allowExternalNameServices: true }, kubernetesCRD: { allowExternalNameServices: true } },
            service: { annotations: { [SERVICELB_TOLERATIONS_ANNOTATION]: '[{"key":"amd.com/gpu","operator":"Equal","value":"true","effect":"NoSchedule"}]' } },
        });
    });

    it("merges config values under the required ones, which always win", () => {
        const raw: Raw = rawFleet("prod");
        raw.edge.traefikValues = {
            logs: { general: { level: "DEBUG" } },
            providers: { kubernetesCRD: { allowExternalNameServices: false, allowCrossNamespace: true } },
        };
        const values = traefikValues(parseFleet(raw).fleet);
        expect(values).toMatchObject({
            logs: { general: { level: "DEBUG" } },
            providers: { kubernetesCRD: { allowExternalNameServices: true, allowCrossNamespace: true } },
        });
    });

    it("validates against the HelmChartConfig CRD schema, and its values against the chart's values schema", () => {
        const crd = crdValidator("helm.cattle.io_helmchartconfigs.yaml");
        const object = renderTraefikHelmChartConfig(prod);
        expect(crd(object)).toBe(true);
        const values = chartValuesValidator();
        expect(values(parseYaml(object.spec.valuesContent))).toBe(true);
        expect(values.errors ?? null).toBeNull();
    });

    it("is caught by the values schema when a value is misspelt", () => {
        const raw: Raw = rawFleet("prod");
        raw.edge.traefikValues = { providers: { kubernetesCRDs: { allowExternalNameServices: true } } };
        const validate = chartValuesValidator();
        expect(validate(traefikValues(parseFleet(raw).fleet))).toBe(false);
        expect(JSON.stringify(validate.errors)).toContain("kubernetesCRDs");
    });
});

describe("Middlewares", () => {
    it("renders forwardAuth and stripPrefix, valid against the Middleware CRD", () => {
        const middlewares = renderMiddlewares(prod);
        expect(middlewares.map((m) => [m.metadata.namespace, m.metadata.name, Object.keys(m.spec as object)])).toEqual([
            ["networking", "networking-auth-internal", ["forwardAuth"]],
            ["networking", "networking-strip-adsb", ["stripPrefix"]],
        ]);
        const validate = crdValidator("traefik.io_middlewares.yaml");
        for (const middleware of middlewares) {
            expect(validate(middleware)).toBe(true);
        }
    });

    it("renders a headers (CORS) middleware the CRD accepts, and the CRD rejects a bad one", () => {
        const raw: Raw = rawFleet("prod");
        raw.edge.middlewares.push({
            name: "cors",
            namespace: "networking",
            headers: { accessControlAllowOriginList: ["https://console.kub0.xyz"], accessControlAllowMethods: ["GET"] },
        });
        const cors = renderMiddlewares(parseFleet(raw).fleet).at(-1)!;
        const validate = crdValidator("traefik.io_middlewares.yaml");
        expect(validate(cors)).toBe(true);
        expect(validate({ ...cors, spec: { headers: { accessControlAllowMethods: "GET" } } })).toBe(false);
    });
});

describe("external services", () => {
    const objects = renderExternalServices(prod);
    const slices = objects.filter((object) => object.kind === "EndpointSlice");
    const services = objects.filter((object) => object.kind === "Service");

    it("pairs each headless Service with an EndpointSlice of the same name and the same named ports", () => {
        expect(services.map((service) => service.metadata.name)).toEqual(["adsb-aus", "adsb-lax", "adsb-hnd"]);
        for (const service of services) {
            const slice = slices.find((each) => each.metadata.name === service.metadata.name)!;
            expect(slice.metadata.labels?.["kubernetes.io/service-name"]).toBe(service.metadata.name);
            const servicePorts = (service.spec as { ports: { name: string; port: number }[] }).ports.map((port) => [port.name, port.port]);
            expect((slice.ports as { name: string; port: number }[]).map((port) => [port.name, port.port])).toEqual(servicePorts);
            expect(servicePorts.every(([name]) => name === "http")).toBe(true);
            expect((service.spec as { clusterIP: string }).clusterIP).toBe("None");
        }
    });

    it("takes endpoints from the fleet on the overlay the cluster uses, and moves them with it", () => {
        expect((slices[0].endpoints as { addresses: string[] }[])[0].addresses).toEqual(["100.67.0.13"]);
        const raw: Raw = rawFleet("prod");
        raw.cluster.nodeIpFrom = "nebula";
        const moved = renderExternalServices(parseFleet(raw).fleet).filter((object) => object.kind === "EndpointSlice");
        expect(moved.map((slice) => (slice.endpoints as { addresses: string[] }[])[0].addresses[0])).toEqual(["10.67.2.51", "10.67.3.51", "10.67.4.51"]);
    });

    it("renders ExternalName services and gives any LoadBalancer Service the ServiceLB tolerations", () => {
        const raw: Raw = rawFleet("prod");
        raw.edge.externalServices.push({
            name: "cctv-proxy",
            namespace: "cctv",
            type: "ExternalName",
            externalName: "proxy.kub0.io",
            ports: [{ name: "http", port: 8080 }],
        });
        const external = renderExternalServices(parseFleet(raw).fleet).at(-1)!;
        expect(external.kind === "Service" ? external.spec : undefined).toEqual({
            type: "ExternalName",
            externalName: "proxy.kub0.io",
            ports: [{ name: "http", port: 8080, protocol: "TCP", targetPort: 8080 }],
        });
        const lb: K8sObject = { apiVersion: "v1", kind: "Service", metadata: { name: "x" }, spec: { type: "LoadBalancer" } };
        expect(withServiceLbTolerations(prod, lb).metadata.annotations?.[SERVICELB_TOLERATIONS_ANNOTATION]).toBe(JSON.stringify(serviceLbTolerations(prod)));
    });
});

describe("workloads", () => {
    it("refuses to render Tailscale with hostNetwork, even past config validation", () => {
        const daemonSet: K8sObject = {
            apiVersion: "apps/v1",
            kind: "DaemonSet",
            metadata: { name: "ts", namespace: "tailscale" },
            spec: {
                selector: { matchLabels: { app: "ts" } },
                template: {
                    metadata: { labels: { app: "ts" } },
                    spec: { hostNetwork: true, containers: [{ name: "ts", image: "tailscale/tailscale:stable" }] },
                },
            },
        };
        expect(() => assertNoHostNetworkTailscale([daemonSet])).toThrow("DaemonSet tailscale/ts runs Tailscale with hostNetwork: refused");
        expect(() => renderClusterEdge(prod)).not.toThrow();
    });

    it("carries Traefik's HelmChartConfig on its own: the other objects never include one", () => {
        const edge = renderClusterEdge(prod);
        expect(edge.traefik).toEqual(renderTraefikHelmChartConfig(prod));
        expect(edge.objects.map((object) => object.kind as string)).not.toContain("HelmChartConfig");
        expect(edgeObjects(edge)[0]).toBe(edge.traefik);
    });
});

describe("kubeconfig", () => {
    it("points k3s's kubeconfig at an address in the genesis's tls-san", () => {
        const k3sYaml =
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://127.0.0.1:6443\n  name: default\nkind: Config\n";
        const rewritten = parseYaml(rewriteKubeconfigServer(k3sYaml, "https://100.67.0.1:6443")) as {
            clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
        };
        expect(rewritten.clusters[0].cluster).toEqual({ "certificate-authority-data": "AAAA", server: "https://100.67.0.1:6443" });
    });
});
