import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as YAML from "yaml";

/*
 * A real Kubernetes API server for the end-to-end suite: Debian's etcd (etcd-server) and
 * kube-apiserver built from the Go module proxy (scripts/tools/build-engine.sh), on one
 * address of the lab bridge's root side, with a throw-away CA, serving certificate,
 * service-account keys and an admin client certificate (O=system:masters) made by openssl.
 * It authorizes and admits as k3s's own API server does (pkg/daemons/control/server.go:
 * --authorization-mode=Node,RBAC, --enable-admission-plugins=NodeRestriction,
 * --anonymous-auth=false), so a kubelet's credentials (nodeKubeconfig) are limited here as on a
 * K3s node. No controllers, scheduler or kubelets run: objects are stored and served, nothing
 * reconciles them. The shared CRDs (../shared/schemas) are installed before it is handed out.
 */

export interface ApiServer {
    url: string;
    /** Admin kubeconfig (client certificate), server = url. */
    kubeconfig: string;
    kubeconfigPath: string;
    version: string;
    /** Runs the built kubectl against it, as the admin unless `kubeconfig` names another identity's. */
    kubectl(args: string[], opts?: { stdin?: string; check?: boolean; kubeconfig?: string }): { code: number; stdout: string; stderr: string };
    /**
     * A kubeconfig (its path) with a kubelet's client certificate for node `nodeName`
     * (CN=system:node:<name>, O=system:nodes): what a K3s agent's kubelet.kubeconfig holds.
     */
    nodeKubeconfig(nodeName: string): string;
    /** kube-apiserver's and etcd's pids: they run in the machine's own namespace, where a lab run's teardown finds them only if started from its run directory. */
    pids: number[];
    stop(): Promise<void>;
}

const SCHEMAS = path.resolve(__dirname, "..", "..", "..", "..", "shared", "schemas");
export const CRD_FILES = ["helm.cattle.io_helmchartconfigs.yaml", "traefik.io_middlewares.yaml"];

function freePort(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, host, () => {
            const address = server.address() as net.AddressInfo;
            server.close(() => resolve(address.port));
        });
    });
}

function openssl(dir: string, args: string[]): void {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
}

/** Signs a client or serving certificate `<name>.crt` (key `<name>.key`) with the throw-away CA in `dir`. */
function signCertificate(dir: string, name: string, subject: string, ext: string): void {
    openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
    openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(dir, [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.crt`,
    ]);
}

function makePki(dir: string, address: string): void {
    openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(dir, ["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=shortcircuit-e2e-kube-ca", "-days", "2", "-out", "ca.crt"]);
    signCertificate(
        dir,
        "apiserver",
        "/CN=kube-apiserver",
        `subjectAltName=IP:${address},IP:127.0.0.1,IP:10.43.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`,
    );
    signCertificate(dir, "admin", "/O=system:masters/CN=shortcircuit-e2e-admin", "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n");
    openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
    openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

function kubeconfigFor(dir: string, url: string, user: string): string {
    const b64 = (file: string): string => fs.readFileSync(path.join(dir, file)).toString("base64");
    return YAML.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "e2e", cluster: { server: url, "certificate-authority-data": b64("ca.crt") } }],
        users: [{ name: user, user: { "client-certificate-data": b64(`${user}.crt`), "client-key-data": b64(`${user}.key`) } }],
        contexts: [{ name: "e2e", context: { cluster: "e2e", user } }],
        "current-context": "e2e",
    });
}

/** A Kubernetes node name (RFC 1123 subdomain): safe in a certificate subject and a file name. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function spawnLogged(file: string, args: string[], log: string): ChildProcess {
    const fd = fs.openSync(log, "a");
    const child = spawn(file, args, { stdio: ["ignore", fd, fd], detached: true });
    fs.closeSync(fd);
    return child;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
        process.kill(-child.pid, "SIGTERM");
    } catch {
        return;
    }
    let timeout: NodeJS.Timeout | undefined;
    const timer = new Promise<"timeout">((resolve) => {
        timeout = setTimeout(() => resolve("timeout"), 10_000);
    });
    const first = await Promise.race([exited, timer]);
    clearTimeout(timeout);
    if (first === "timeout") {
        try {
            process.kill(-child.pid, "SIGKILL");
        } catch {
            // gone
        }
    }
}

/** Starts etcd and kube-apiserver listening on `address` (an address of this machine); ready when it returns. */
export async function startApiServer(opts: { dir: string; address: string; kubeBin: string; serviceCidr: string }): Promise<ApiServer> {
    const { dir, address } = opts;
    fs.mkdirSync(dir, { recursive: true });
    makePki(dir, address);
    const etcdBin = ["/usr/bin/etcd", "/usr/sbin/etcd"].find((file) => fs.existsSync(file));
    if (!etcdBin) throw new Error("etcd not found: the Debian package etcd-server provides it (scripts/setup.sh installs it)");
    const clientPort = await freePort("127.0.0.1");
    const peerPort = await freePort("127.0.0.1");
    const apiPort = await freePort(address);
    const etcd = spawnLogged(
        etcdBin,
        [
            "--name=e2e",
            `--data-dir=${path.join(dir, "etcd")}`,
            `--listen-client-urls=http://127.0.0.1:${clientPort}`,
            `--advertise-client-urls=http://127.0.0.1:${clientPort}`,
            `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
            `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
            `--initial-cluster=e2e=http://127.0.0.1:${peerPort}`,
        ],
        path.join(dir, "etcd.log"),
    );
    const url = `https://${address}:${apiPort}`;
    const apiserver = spawnLogged(
        path.join(opts.kubeBin, "kube-apiserver"),
        [
            `--etcd-servers=http://127.0.0.1:${clientPort}`,
            `--bind-address=${address}`,
            `--advertise-address=${address}`,
            `--secure-port=${apiPort}`,
            `--service-cluster-ip-range=${opts.serviceCidr}`,
            `--client-ca-file=${path.join(dir, "ca.crt")}`,
            `--tls-cert-file=${path.join(dir, "apiserver.crt")}`,
            `--tls-private-key-file=${path.join(dir, "apiserver.key")}`,
            `--service-account-issuer=https://kubernetes.default.svc`,
            `--service-account-key-file=${path.join(dir, "sa.pub")}`,
            `--service-account-signing-key-file=${path.join(dir, "sa.key")}`,
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--anonymous-auth=false",
            `--cert-dir=${path.join(dir, "certs")}`,
        ],
        path.join(dir, "kube-apiserver.log"),
    );
    const kubeconfig = kubeconfigFor(dir, url, "admin");
    const kubeconfigPath = path.join(dir, "admin.kubeconfig");
    fs.writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
    const kubectl = (
        args: string[],
        kopts: { stdin?: string; check?: boolean; kubeconfig?: string } = {},
    ): { code: number; stdout: string; stderr: string } => {
        try {
            const stdout = execFileSync(
                path.join(opts.kubeBin, "kubectl"),
                ["--kubeconfig", kopts.kubeconfig ?? kubeconfigPath, "--request-timeout=20s", ...args],
                {
                    encoding: "utf8",
                    input: kopts.stdin,
                    stdio: ["pipe", "pipe", "pipe"],
                    timeout: 60_000,
                },
            );
            return { code: 0, stdout, stderr: "" };
        } catch (error) {
            const e = error as { status?: number; stdout?: string; stderr?: string };
            const result = { code: e.status ?? 1, stdout: String(e.stdout ?? ""), stderr: String(e.stderr ?? "") };
            if (kopts.check) throw new Error(`kubectl ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
            return result;
        }
    };
    // A run killed before its cleanup still takes the two daemons with it.
    const onExit = (): void => {
        for (const child of [apiserver, etcd]) {
            try {
                if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGKILL");
            } catch {
                // gone
            }
        }
    };
    process.once("exit", onExit);
    // The hook stays until both have stopped: a run that exits while stop() waits still kills them.
    const stop = async (): Promise<void> => {
        await stopChild(apiserver);
        await stopChild(etcd);
        process.removeListener("exit", onExit);
    };
    // Ready: /readyz answers ok (about 5 s on an idle machine; bounded at 90 s).
    const deadline = Date.now() + 90_000;
    for (;;) {
        if (apiserver.exitCode !== null || etcd.exitCode !== null) {
            await stop();
            throw new Error(`the API server exited:\n${tail(path.join(dir, "kube-apiserver.log"))}\n${tail(path.join(dir, "etcd.log"))}`);
        }
        if (kubectl(["get", "--raw", "/readyz"]).stdout.trim() === "ok") break;
        if (Date.now() > deadline) {
            await stop();
            throw new Error(`the API server was not ready within 90 s:\n${tail(path.join(dir, "kube-apiserver.log"))}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
    }
    for (const file of CRD_FILES) kubectl(["apply", "-f", path.join(SCHEMAS, file)], { check: true });
    kubectl(["wait", "--for=condition=Established", "crd/helmchartconfigs.helm.cattle.io", "crd/middlewares.traefik.io", "--timeout=60s"], { check: true });
    const version = (JSON.parse(kubectl(["version", "-o", "json"], { check: true }).stdout) as { serverVersion: { gitVersion: string } }).serverVersion
        .gitVersion;
    const pids = [apiserver.pid, etcd.pid].filter((pid): pid is number => pid !== undefined);
    const nodeKubeconfig = (nodeName: string): string => {
        if (!NODE_NAME.test(nodeName) || nodeName.length > 253) throw new Error(`not a node name: ${JSON.stringify(nodeName)}`);
        const user = `node-${nodeName}`;
        const file = path.join(dir, `${user}.kubeconfig`);
        if (!fs.existsSync(file)) {
            signCertificate(dir, user, `/O=system:nodes/CN=system:node:${nodeName}`, "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n");
            fs.writeFileSync(file, kubeconfigFor(dir, url, user), { mode: 0o600 });
        }
        return file;
    };
    return { url, kubeconfig, kubeconfigPath, version, kubectl, nodeKubeconfig, pids, stop };
}

function tail(file: string): string {
    try {
        return fs.readFileSync(file, "utf8").split("\n").slice(-30).join("\n");
    } catch {
        return `(${file} unreadable)`;
    }
}
