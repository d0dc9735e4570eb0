import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { versions } from "../../components/versions";
import { validFleet } from "../support/fixtures";
import {
    litestreamBinary,
    litestreamEnv,
    replicaOn,
    runBounded,
    startReplicate,
    startS3,
    waitReplicated,
    writeLitestreamConfig,
} from "../support/litestreamLab";
import { versitygwBinary } from "../support/s3Server";
import { sleep, stopChildren } from "../support/processes";

/*
 * The replica's lag, as a lost volume would feel it: how old the newest change a restore brings
 * back is at the moment the restore is asked for. A writer commits a row stamped with its wall
 * time every WRITE_EVERY_MS into a WAL-mode SQLite database (Headscale's pragmas); the pinned
 * Litestream replicates it with the prod stack's sync interval to versitygw on loopback; each
 * sample runs `litestream restore -o` and reads the newest stamp in the copy. An age just below 0
 * is a change committed while the restore was already running, and in the copy. A separate module
 * so `npm run bench -- --lag-only` runs just this.
 */

const WRITE_EVERY_MS = 100;
const SAMPLES = 10;

function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
}

export async function replicationLagFigure(): Promise<void> {
    try {
        litestreamBinary();
        versitygwBinary();
    } catch (error) {
        console.log(`replication lag: not measured, ${(error as Error).message}`);
        return;
    }
    const replicaSettings = validFleet("prod").controlServer.replica;
    const syncInterval = replicaSettings?.syncInterval ?? "1s";
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shortcircuit-lag-"));
    const s3 = await startS3(path.join(tmp, "s3"));
    const database = path.join(tmp, "db.sqlite");
    const db = new DatabaseSync(database);
    db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=1000; CREATE TABLE changes (at INTEGER NOT NULL)");
    const insert = db.prepare("INSERT INTO changes (at) VALUES (?)");
    insert.run(Date.now());
    const config = writeLitestreamConfig(tmp, replicaOn(s3, { syncInterval }), database);
    const env = litestreamEnv(s3);
    const replicator = startReplicate(config, env, path.join(tmp, "litestream.log"));
    const writer = setInterval(() => insert.run(Date.now()), WRITE_EVERY_MS);
    try {
        await waitReplicated(config, database, env, 30_000);
        const ages: number[] = [];
        const restores: number[] = [];
        for (let sample = 0; sample < SAMPLES; sample++) {
            const copy = path.join(tmp, `copy-${sample}.sqlite`);
            const askedAt = Date.now();
            const result = await runBounded(litestreamBinary(), ["restore", "-config", config, "-o", copy, database], env, 60_000);
            restores.push(Date.now() - askedAt);
            if (result.status !== 0) {
                throw new Error(`litestream restore exited ${result.status}: ${result.output}`);
            }
            const restored = new DatabaseSync(copy, { readOnly: true });
            const newest = (restored.prepare("SELECT max(at) AS at FROM changes").get() as { at: number }).at;
            restored.close();
            ages.push(askedAt - newest);
            // Spread the samples over the sync interval's phases.
            await sleep(350);
        }
        console.log(
            `replication lag (Litestream ${versions.litestream} → S3 on loopback, sync-interval ${syncInterval}, a commit every ${WRITE_EVERY_MS} ms): ` +
                `the newest restorable change was ${(median(ages) / 1000).toFixed(2)} s old (median of ${SAMPLES}; ` +
                `min ${(Math.min(...ages) / 1000).toFixed(2)} s, max ${(Math.max(...ages) / 1000).toFixed(2)} s); ` +
                `a restore took ${(median(restores) / 1000).toFixed(2)} s (median)`,
        );
    } finally {
        clearInterval(writer);
        db.close();
        await stopChildren([replicator.child]);
        await s3.stop();
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}
