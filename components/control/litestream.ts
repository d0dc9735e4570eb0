import { Document } from "yaml";
import { renderUnitFile } from "../remote/systemdUnit";
import type { ReplicaConfig } from "../../stacks/schema";
import { HEADSCALE_FILES, HEADSCALE_STATE_DIR } from "./headscale";

/*
 * Litestream beside Headscale on the control host: it replicates Headscale's SQLite database
 * (WAL mode, see renderHeadscaleConfig) into the S3 bucket of `controlServer.replica`, and a
 * oneshot unit restores it from there before Headscale starts on a host that holds no database
 * (a rebuilt droplet on a new, empty volume). A database that exists is never touched:
 * `litestream restore -if-db-not-exists` returns before it reads the replica.
 *
 * The S3 credentials never appear in these files: the config names ${LITESTREAM_ACCESS_KEY_ID}
 * and ${LITESTREAM_SECRET_ACCESS_KEY}, which Litestream expands from its environment, and
 * systemd reads them (as root) from LITESTREAM_FILES.env, mode 0600.
 */

export const LITESTREAM_BINARY = "/usr/local/bin/litestream";
export const LITESTREAM_FILES = {
    config: "/etc/litestream.yml",
    env: "/etc/default/litestream",
    unit: "/etc/systemd/system/litestream.service",
    restoreUnit: "/etc/systemd/system/headscale-restore.service",
    /** Headscale's own unit comes from its package; this drop-in makes it wait for the restore. */
    headscaleDropIn: "/etc/systemd/system/headscale.service.d/shortcircuit-restore.conf",
} as const;
export const LITESTREAM_UNIT = "litestream.service";
export const RESTORE_UNIT = "headscale-restore.service";
export const ACCESS_KEY_VAR = "LITESTREAM_ACCESS_KEY_ID";
export const SECRET_KEY_VAR = "LITESTREAM_SECRET_ACCESS_KEY";

export interface LitestreamPaths {
    /** The database Litestream replicates and restores (tests use a temp dir). */
    database?: string;
}

/** Litestream's config as a plain object: one database, one S3 replica, secrets by reference. */
export function renderLitestreamConfig(replica: ReplicaConfig, paths: LitestreamPaths = {}): Record<string, unknown> {
    return {
        snapshot: { interval: replica.snapshotInterval, retention: replica.retention },
        dbs: [
            {
                path: paths.database ?? HEADSCALE_FILES.database,
                replica: {
                    type: "s3",
                    bucket: replica.bucket,
                    path: replica.path,
                    endpoint: replica.endpoint,
                    region: replica.region,
                    // Spaces answers both styles; a loopback S3 server (the tests) only path style.
                    "force-path-style": true,
                    "sync-interval": replica.syncInterval,
                    "access-key-id": `\${${ACCESS_KEY_VAR}}`,
                    "secret-access-key": `\${${SECRET_KEY_VAR}}`,
                },
            },
        ],
    };
}

export function renderLitestreamConfigYaml(replica: ReplicaConfig, paths: LitestreamPaths = {}): string {
    const document = new Document(renderLitestreamConfig(replica, paths));
    document.commentBefore = " Managed by shortcircuit (Pulumi): Litestream replicates Headscale's database. Credentials come from the environment.";
    return document.toString({ lineWidth: 0 });
}

/** The EnvironmentFile: the only place the credentials are written on the host. */
export function renderLitestreamEnv(accessKeyId: string, secretAccessKey: string): string {
    // stacks/secrets.ts REPLICA_SECRET_PATTERN keeps both to one word systemd reads verbatim.
    return `${ACCESS_KEY_VAR}=${accessKeyId}\n${SECRET_KEY_VAR}=${secretAccessKey}\n`;
}

/** The exact restore command the restore unit runs (and the restore drill repeats). */
export function restoreCommand(options: { binary?: string; config?: string; database?: string } = {}): string[] {
    return [
        options.binary ?? LITESTREAM_BINARY,
        "restore",
        "-config",
        options.config ?? LITESTREAM_FILES.config,
        // Never overwrite: a database on the volume is newer than, or equal to, the replica.
        "-if-db-not-exists",
        // A first deployment has no replica yet: Headscale then starts on a new database.
        "-if-replica-exists",
        options.database ?? HEADSCALE_FILES.database,
    ];
}

/**
 * Without a database, a -wal or -shm file left on the volume, or Litestream's local state
 * (.db.sqlite-litestream), belongs to a database that is gone: SQLite would apply an old WAL to
 * the restored file, and Litestream would resume from a position it no longer has. Removed only
 * when the database itself is absent.
 */
export function staleStateCleanup(database: string = HEADSCALE_FILES.database): string {
    const slash = database.lastIndexOf("/");
    const meta = `${database.slice(0, slash + 1)}.${database.slice(slash + 1)}-litestream`;
    return `test -e ${database} || rm -rf ${database}-wal ${database}-shm ${meta}`;
}

/** The oneshot that restores before Headscale (and Litestream) start; it runs at every start of either. */
export function renderRestoreUnit(): string {
    return renderUnitFile([
        [
            "Unit",
            [
                ["Description", "Restore Headscale's database from the Litestream replica when the host holds none (shortcircuit)"],
                ["Wants", "network-online.target"],
                ["After", "network-online.target"],
                ["Before", `headscale.service ${LITESTREAM_UNIT}`],
                // A volume not yet mounted would look like a lost database.
                ["RequiresMountsFor", HEADSCALE_STATE_DIR],
            ],
        ],
        [
            "Service",
            [
                ["Type", "oneshot"],
                ["User", "headscale"],
                ["Group", "headscale"],
                ["EnvironmentFile", LITESTREAM_FILES.env],
                ["ExecStartPre", `/bin/sh -c '${staleStateCleanup()}'`],
                ["ExecStart", restoreCommand().join(" ")],
                // A restore that cannot finish must fail, not hang Headscale's start forever.
                ["TimeoutStartSec", "600"],
            ],
        ],
    ]);
}

/** Headscale starts only after a restore attempt, and not at all when that attempt fails. */
export function renderHeadscaleRestoreDropIn(): string {
    return renderUnitFile([
        [
            "Unit",
            [
                ["Requires", RESTORE_UNIT],
                ["After", RESTORE_UNIT],
            ],
        ],
    ]);
}

export function renderLitestreamUnit(): string {
    return renderUnitFile([
        [
            "Unit",
            [
                ["Description", "Litestream: replicates Headscale's database to S3 (shortcircuit)"],
                ["Wants", "network-online.target"],
                // Replicating starts only once a restore was attempted, so it never starts a new
                // history from an empty host while the replica holds the real one.
                ["Requires", RESTORE_UNIT],
                ["After", `network-online.target ${RESTORE_UNIT} headscale.service`],
            ],
        ],
        [
            "Service",
            [
                ["User", "headscale"],
                ["Group", "headscale"],
                ["EnvironmentFile", LITESTREAM_FILES.env],
                ["ExecStart", `${LITESTREAM_BINARY} replicate -config ${LITESTREAM_FILES.config}`],
                ["Restart", "always"],
                ["RestartSec", "5"],
            ],
        ],
        ["Install", [["WantedBy", "multi-user.target"]]],
    ]);
}
