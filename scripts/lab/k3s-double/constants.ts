/**
 * Fixed paths inside a host and k3s's own flag names (what config.yaml may contain per role).
 * The flag tables are deliberately strict: the project's renderer must produce only valid keys.
 */
import type { K3sBehaviourCue } from "./types";

export const STATE_DIR = "/var/lib/rancher/k3s-test-double";
export const CONFIG_FILE = "/etc/rancher/k3s/config.yaml";
export const CONFIG_DROPIN_DIR = "/etc/rancher/k3s/config.yaml.d";
/** Where real k3s agents keep the kubelet's kubeconfig (Node-authorizer credentials). */
export const AGENT_KUBELET_KUBECONFIG = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";
export const KUBECONFIG_FILE = "/etc/rancher/k3s/k3s.yaml";
export const DYNAMIC_CERT_REGENERATE = "/var/lib/rancher/k3s/server/tls/dynamic-cert-regenerate";
export const SERVER_DIR = "/var/lib/rancher/k3s/server";
export const HISTORY_LIMIT = 200;
export const WAIT_MAX_MS = 10 * 60 * 1000;

export const DEFAULT_CUE: K3sBehaviourCue = {
    readyDelayMs: 0,
    neverReady: false,
    failOnStart: null,
    etcdUnhealthy: false,
    keepStaleFlannelLink: false,
    kubeconfig: null,
    apiHangs: false,
    evictionBlocked: false,
    workloadPod: false,
    unmanagedPod: false,
};

export type Kind = "bool" | "string" | "list" | "int";

/** Flags of both `k3s agent` and `k3s server`. */
export const AGENT_KEYS: Record<string, Kind> = {
    config: "string",
    debug: "bool",
    v: "int",
    vmodule: "string",
    log: "string",
    alsologtostderr: "bool",
    token: "string",
    "token-file": "string",
    server: "string",
    "data-dir": "string",
    "node-name": "string",
    "with-node-id": "bool",
    "node-label": "list",
    "node-taint": "list",
    "image-credential-provider-bin-dir": "string",
    "image-credential-provider-config": "string",
    selinux: "bool",
    "lb-server-port": "int",
    "protect-kernel-defaults": "bool",
    docker: "bool",
    "container-runtime-endpoint": "string",
    "default-runtime": "string",
    "image-service-endpoint": "string",
    "disable-default-registry-endpoint": "bool",
    "nonroot-devices": "bool",
    "pause-image": "string",
    snapshotter: "string",
    "private-registry": "string",
    "system-default-registry": "string",
    "node-ip": "list",
    "node-external-ip": "list",
    "node-internal-dns": "list",
    "node-external-dns": "list",
    "resolv-conf": "string",
    "flannel-iface": "string",
    "flannel-conf": "string",
    "flannel-cni-conf": "string",
    "vpn-auth": "string",
    "vpn-auth-file": "string",
    "kubelet-arg": "list",
    "kube-proxy-arg": "list",
    rootless: "bool",
    "prefer-bundled-bin": "bool",
    "airgap-extra-registry": "list",
    "disable-apiserver-lb": "bool",
    "enable-pprof": "bool",
};

/** Flags only `k3s server` has. */
export const SERVER_ONLY_KEYS: Record<string, Kind> = {
    "bind-address": "string",
    "advertise-address": "string",
    "advertise-port": "int",
    "https-listen-port": "int",
    "supervisor-port": "int",
    "apiserver-port": "int",
    "apiserver-bind-address": "string",
    "tls-san": "list",
    "tls-san-security": "bool",
    "cluster-cidr": "list",
    "service-cidr": "list",
    "service-node-port-range": "string",
    "cluster-dns": "list",
    "cluster-domain": "string",
    "flannel-backend": "string",
    "flannel-ipv6-masq": "bool",
    "flannel-external-ip": "bool",
    "egress-selector-mode": "string",
    "servicelb-namespace": "string",
    "write-kubeconfig": "string",
    "write-kubeconfig-mode": "string",
    "write-kubeconfig-group": "string",
    "helm-job-image": "string",
    "agent-token": "string",
    "agent-token-file": "string",
    "cluster-init": "bool",
    "cluster-reset": "bool",
    "cluster-reset-restore-path": "string",
    "kube-apiserver-arg": "list",
    "etcd-arg": "list",
    "kube-controller-manager-arg": "list",
    "kube-scheduler-arg": "list",
    "kube-cloud-controller-manager-arg": "list",
    "kine-tls": "bool",
    "datastore-endpoint": "string",
    "datastore-cafile": "string",
    "datastore-certfile": "string",
    "datastore-keyfile": "string",
    "etcd-expose-metrics": "bool",
    "etcd-disable-snapshots": "bool",
    "etcd-snapshot-name": "string",
    "etcd-snapshot-schedule-cron": "string",
    "etcd-snapshot-retention": "int",
    "etcd-snapshot-dir": "string",
    "etcd-snapshot-compress": "bool",
    "etcd-s3": "bool",
    "etcd-s3-endpoint": "string",
    "etcd-s3-bucket": "string",
    "etcd-s3-region": "string",
    "etcd-s3-folder": "string",
    "etcd-s3-access-key": "string",
    "etcd-s3-secret-key": "string",
    "default-local-storage-path": "string",
    disable: "list",
    "disable-scheduler": "bool",
    "disable-cloud-controller": "bool",
    "disable-kube-proxy": "bool",
    "disable-network-policy": "bool",
    "disable-helm-controller": "bool",
    "disable-etcd": "bool",
    "disable-apiserver": "bool",
    "disable-controller-manager": "bool",
    "disable-agent": "bool",
    "embedded-registry": "bool",
    "supervisor-metrics": "bool",
    "secrets-encryption": "bool",
    "secrets-encryption-provider": "string",
};

export const FLANNEL_BACKENDS = ["vxlan", "host-gw", "wireguard-native", "none"];

/** Values every server of a cluster must share (checked when a server joins). */
export const CRITICAL_DEFAULTS: Record<string, string> = {
    "cluster-cidr": "10.42.0.0/16",
    "service-cidr": "10.43.0.0/16",
    "cluster-dns": "10.43.0.10",
    "cluster-domain": "cluster.local",
    "flannel-backend": "vxlan",
    "flannel-ipv6-masq": "false",
    disable: "",
    "disable-network-policy": "false",
    "disable-helm-controller": "false",
    "egress-selector-mode": "agent",
    "secrets-encryption": "false",
};
