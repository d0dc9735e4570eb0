import { parse as parseYaml } from "yaml";
import {
    LITESTREAM_FILES,
    renderHeadscaleRestoreDropIn,
    renderLitestreamConfig,
    renderLitestreamConfigYaml,
    renderLitestreamUnit,
    renderRestoreUnit,
    restoreCommand,
    staleStateCleanup,
} from "../../../components/control/litestream";
import { parsePayload } from "../../../components/remote/payload";
import { remoteScript } from "../../../components/remote/scripts";
import { versions } from "../../../components/versions";
import { throwawayPlan } from "../../../scripts/render/throwawayPlan";
import { checkStack, refusalLines } from "../../../stacks/check";
import type { SecretReader } from "../../../stacks/secrets";
import { formatProblem, validateFleet } from "../../../stacks/validate";
import { rawFleet, validFleet, type Raw } from "../../support/fixtures";
import { TEST_SECRETS } from "../../support/pulumiMocks";

/*
 * Litestream beside Headscale: the rendered config (no secret in it), the units that make
 * Headscale start only after a restore attempt, where the plan delivers them, and the stack
 * file's `controlServer.replica` and its secrets as the one config check reads them.
 */

const prod = validFleet("prod");
const NOW = new Date("2026-11-22T00:00:00Z");

function planOf(raw: unknown): ReturnType<typeof throwawayPlan>["plan"] {
    const { fleet, problems } = validateFleet(raw);
    if (!fleet) {
        throw new Error(problems.map(formatProblem).join("\n"));
    }
    return throwawayPlan(fleet, { now: NOW, pkiSeedHex: "5c".repeat(32) }).plan;
}

function unitLines(unit: string, key: string): string[] {
    return unit
        .split("\n")
        .filter((line) => line.startsWith(`${key}=`))
        .map((line) => line.slice(key.length + 1));
}

describe("Litestream's config", () => {
    it("replicates Headscale's database to the stack's bucket, with the credentials by reference only", () => {
        const replica = prod.controlServer.replica!;
        expect(renderLitestreamConfig(replica)).toEqual({
            snapshot: { interval: "24h", retention: "168h" },
            dbs: [
                {
                    path: "/var/lib/headscale/db.sqlite",
                    replica: {
                        type: "s3",
                        bucket: "shortcircuit-headscale",
                        path: "headscale/prod",
                        endpoint: "https://sfo3.digitaloceanspaces.com",
                        region: "sfo3",
                        "force-path-style": true,
                        "sync-interval": "1s",
                        "access-key-id": "${LITESTREAM_ACCESS_KEY_ID}",
                        "secret-access-key": "${LITESTREAM_SECRET_ACCESS_KEY}",
                    },
                },
            ],
        });
        expect(parseYaml(renderLitestreamConfigYaml(replica))).toEqual(renderLitestreamConfig(replica));
    });

    it("keeps Headscale in WAL mode, which Litestream replicates", () => {
        const plan = planOf(rawFleet("prod"));
        const config = plan.control.deliveries.flatMap((each) => each.publicFiles).find((file) => file.path === "/etc/headscale/config.yaml")!;
        expect(parseYaml(config.content)).toMatchObject({
            database: { type: "sqlite", sqlite: { path: "/var/lib/headscale/db.sqlite", write_ahead_log: true } },
        });
    });
});

describe("the restore before Headscale starts", () => {
    const unit = renderRestoreUnit();

    it("runs restore -if-db-not-exists -if-replica-exists on Headscale's database, as the headscale user, with the credentials from the 0600 environment file", () => {
        expect(unitLines(unit, "ExecStart")).toEqual([
            "/usr/local/bin/litestream restore -config /etc/litestream.yml -if-db-not-exists -if-replica-exists /var/lib/headscale/db.sqlite",
        ]);
        expect(unitLines(unit, "ExecStart")[0]).toBe(restoreCommand().join(" "));
        expect(unitLines(unit, "Type")).toEqual(["oneshot"]);
        expect(unitLines(unit, "User")).toEqual(["headscale"]);
        expect(unitLines(unit, "EnvironmentFile")).toEqual(["/etc/default/litestream"]);
        expect(unitLines(unit, "Before")).toEqual(["headscale.service litestream.service"]);
        // A volume that is not mounted yet must not look like a lost database.
        expect(unitLines(unit, "RequiresMountsFor")).toEqual(["/var/lib/headscale"]);
    });

    it("clears a WAL, shm or Litestream state left without its database, and only then", () => {
        expect(unitLines(unit, "ExecStartPre")).toEqual([`/bin/sh -c '${staleStateCleanup()}'`]);
        expect(staleStateCleanup()).toBe(
            "test -e /var/lib/headscale/db.sqlite || rm -rf /var/lib/headscale/db.sqlite-wal /var/lib/headscale/db.sqlite-shm /var/lib/headscale/.db.sqlite-litestream",
        );
    });

    it("makes Headscale require it (a failed restore keeps Headscale from starting on an empty database) and Litestream wait for it", () => {
        const dropIn = renderHeadscaleRestoreDropIn();
        expect(dropIn).toBe("# Managed by shortcircuit (Pulumi).\n[Unit]\nRequires=headscale-restore.service\nAfter=headscale-restore.service\n");
        const litestream = renderLitestreamUnit();
        expect(unitLines(litestream, "Requires")).toEqual(["headscale-restore.service"]);
        expect(unitLines(litestream, "After")).toEqual(["network-online.target headscale-restore.service headscale.service"]);
        expect(unitLines(litestream, "ExecStart")).toEqual(["/usr/local/bin/litestream replicate -config /etc/litestream.yml"]);
        expect(unitLines(litestream, "User")).toEqual(["headscale"]);
    });
});

describe("the plan with a replica", () => {
    const plan = planOf(rawFleet("prod"));
    const litestream = plan.control.deliveries.find((each) => each.role === "litestream")!;

    it("delivers Litestream's files before Headscale's, the credentials only as a 0600 root file in the secret payload", () => {
        expect(plan.control.deliveries.map((each) => each.role)).toEqual(["litestream", "headscale", "nebula"]);
        expect(litestream.service).toEqual({ kind: "systemd", unit: "litestream.service" });
        expect(litestream.secretFiles.map((file) => [file.path, file.mode])).toEqual([["/etc/default/litestream", 0o600]]);
        expect(litestream.secretOwner).toBeUndefined();
        expect(litestream.secretFiles[0].content).toBe(
            "LITESTREAM_ACCESS_KEY_ID=throwaway-replica-access-key-id\nLITESTREAM_SECRET_ACCESS_KEY=throwaway-replica-secret-access-key\n",
        );
        expect(litestream.publicFiles.map((file) => [file.path, file.mode])).toEqual([
            ["/etc/litestream.yml", 0o644],
            ["/etc/systemd/system/headscale-restore.service", 0o644],
            ["/etc/systemd/system/litestream.service", 0o644],
        ]);
        const publicText = plan.control.deliveries.map((each) => each.payloads.public).join("\n");
        expect(publicText).not.toContain("throwaway-replica");
        expect(parsePayload(litestream.payloads.secret).files.map((file) => file.target)).toEqual(["/etc/default/litestream"]);
        const headscale = plan.control.deliveries.find((each) => each.role === "headscale")!;
        expect(headscale.publicFiles.map((file) => file.path)).toContain(LITESTREAM_FILES.headscaleDropIn);
    });

    it("has the bootstrap install the pinned Litestream", () => {
        expect(parsePayload(plan.control.bootstrapPayload).params.LITESTREAM_VERSION).toBe("v0.5.18");
    });

    it("names the version of each binary the bootstrap installs in that service's files step only, so a new version restarts it (fleet hosts' Nebula: none)", () => {
        expect(plan.control.deliveries.map((each) => [each.role, parsePayload(each.payloads.public).params.BINARY_VERSION])).toEqual([
            ["litestream", versions.litestream],
            ["headscale", versions.headscale],
            ["nebula", versions.nebula],
        ]);
        for (const each of plan.control.deliveries) {
            expect([each.role, parsePayload(each.payloads.secret).params.BINARY_VERSION]).toEqual([each.role, undefined]);
        }
        expect(plan.nebulaHosts.map((host) => parsePayload(host.delivery.payloads.public).params.BINARY_VERSION)).toEqual(
            plan.nebulaHosts.map(() => undefined),
        );
        expect(remoteScript("control/bootstrap.sh")).toMatch(/restart_pending nebula\.service\n\s*install -m 0755 "\$work\/nebula"/);
    });

    it("puts the restore between Headscale's install and its start in the order", () => {
        expect(plan.order.edges).toEqual(
            expect.arrayContaining([
                expect.objectContaining({ step: "control:litestream", after: "control:bootstrap" }),
                expect.objectContaining({ step: "control:headscale", after: "control:litestream" }),
            ]),
        );
    });

    it("without a replica: no Litestream files, no drop-in, nothing installed", () => {
        const raw: Raw = rawFleet("prod");
        delete raw.controlServer.replica;
        const bare = planOf(raw);
        expect(bare.control.deliveries.map((each) => each.role)).toEqual(["headscale", "nebula"]);
        expect(bare.control.deliveries.flatMap((each) => each.publicFiles).map((file) => file.path)).not.toContain(LITESTREAM_FILES.headscaleDropIn);
        expect(parsePayload(bare.control.bootstrapPayload).params.LITESTREAM_VERSION).toBe("none");
        expect(bare.order.steps.map((step) => step.id)).not.toContain("control:litestream");
    });
});

describe("controlServer.replica in the stack file", () => {
    const problemsWith = (replica: unknown): string[] => {
        const raw: Raw = rawFleet("lab");
        raw.controlServer.replica = replica;
        return validateFleet(raw).problems.map(formatProblem);
    };
    const base = { bucket: "shortcircuit-headscale", endpoint: "https://sfo3.digitaloceanspaces.com", region: "sfo3" };

    it("fills in the defaults", () => {
        const raw: Raw = rawFleet("lab");
        raw.controlServer.replica = base;
        expect(validateFleet(raw).fleet?.controlServer.replica).toEqual({
            ...base,
            path: "headscale",
            retention: "72h",
            snapshotInterval: "24h",
            syncInterval: "1s",
        });
    });

    it("refuses a bad bucket, path, duration or endpoint, and a retention shorter than an hour or than the snapshot interval", () => {
        expect(problemsWith({ ...base, bucket: "Shortcircuit_Headscale" })).toEqual([
            "fleet.controlServer.replica.bucket: must be an S3 bucket name: 3-63 lowercase letters, digits, . and -, starting and ending with a letter or digit",
        ]);
        expect(problemsWith({ ...base, path: "/headscale/" })).toEqual([
            "fleet.controlServer.replica.path: must be a key prefix such as headscale/prod: segments of letters, digits, . _ - joined by /, no leading or trailing /",
        ]);
        expect(problemsWith({ ...base, retention: "3 days" })).toEqual(["fleet.controlServer.replica.retention: must be a duration such as 72h, 30m or 1s"]);
        expect(problemsWith({ ...base, retention: "30m", snapshotInterval: "10m" })).toEqual(["fleet.controlServer.replica.retention: must be at least 1h"]);
        expect(problemsWith({ ...base, retention: "12h" })).toEqual([
            "fleet.controlServer.replica.retention: must be at least snapshotInterval, or mostly only the newest snapshot is kept and no earlier point can be restored",
        ]);
        expect(problemsWith({ ...base, endpoint: "sfo3.digitaloceanspaces.com" })[0]).toMatch(/^fleet\.controlServer\.replica\.endpoint: must be an http/);
        expect(problemsWith({ ...base, accessKeyId: "AKIA" })[0]).toMatch(/^fleet\.controlServer\.replica: .*accessKeyId/);
    });
});

describe("the replica's secrets", () => {
    const reader =
        (values: Readonly<Record<string, string | undefined>>, plaintext: readonly string[] = []): SecretReader =>
        (key) => {
            const value = values[key];
            return value === undefined ? { state: "unset" } : { state: "set", secret: !plaintext.includes(key), value };
        };
    const lines = (raw: unknown, read: SecretReader): string[] => checkStack(raw, read, { now: NOW }).problems.map(formatProblem);

    it("accepts the stack files with both keys set as secrets", () => {
        expect(refusalLines(checkStack(rawFleet("prod"), reader(TEST_SECRETS), { now: NOW }))).toEqual([]);
    });

    it("requires both keys when a replica is configured", () => {
        const rest = Object.fromEntries(Object.entries(TEST_SECRETS).filter(([key]) => !key.startsWith("replica")));
        expect(lines(rawFleet("lab"), reader(rest))).toEqual([
            "shortcircuit:replicaAccessKeyId: required secret is missing (controlServer.replica is set); set it with: pulumi config set --secret shortcircuit:replicaAccessKeyId <value>",
            "shortcircuit:replicaSecretAccessKey: required secret is missing (controlServer.replica is set); set it with: pulumi config set --secret shortcircuit:replicaSecretAccessKey <value>",
        ]);
    });

    it("refuses a key that would not stay one word in the environment file, or one stored in plaintext, without repeating it", () => {
        const bad = lines(rawFleet("lab"), reader({ ...TEST_SECRETS, replicaSecretAccessKey: "abc\nEVIL=1" }));
        expect(bad).toEqual([
            "shortcircuit:replicaSecretAccessKey: must be one word of letters, digits and + / = . _ - (an S3 access key id or secret), at most 256 characters",
        ]);
        expect(bad.join("\n")).not.toContain("EVIL");
        expect(lines(rawFleet("lab"), reader(TEST_SECRETS, ["replicaAccessKeyId"]))).toEqual([
            "shortcircuit:replicaAccessKeyId: must be set with --secret (it is stored in plaintext): pulumi config set --secret shortcircuit:replicaAccessKeyId <value>",
        ]);
    });

    it("only warns about keys set for a stack without a replica", () => {
        const raw: Raw = rawFleet("lab");
        delete raw.controlServer.replica;
        expect(lines(raw, reader(TEST_SECRETS))).toEqual([
            "warning: shortcircuit:replicaAccessKeyId: is set but unused: fleet.controlServer.replica is not set",
            "warning: shortcircuit:replicaSecretAccessKey: is set but unused: fleet.controlServer.replica is not set",
        ]);
    });
});
