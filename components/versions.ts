/*
 * Every version the fleet runs, pinned in one place so an upgrade is one reviewed diff.
 *
 * Downloads: the control server's bootstrap fetches the Headscale .deb, the Nebula tarball and
 * (with controlServer.replica) the Litestream tarball of these releases and refuses any whose
 * sha256 is not the one the release's own checksums file lists (headscale `checksums.txt`,
 * nebula `SHASUM256.txt`, litestream `checksums.txt`, which its .goreleaser.yml writes beside
 * `litestream-<version without v>-linux-{x86_64,arm64}.tar.gz`). Pinned digests would be stronger
 * (they do not trust the release host twice); none could be obtained where this was written
 * (no access to the release assets), so add them here when upgrading and have verify() in
 * control/bootstrap.sh prefer them.
 */
export const versions = {
    /** ≥ v1.30.4 for the svccontroller.k3s.cattle.io/tolerations ServiceLB annotation. */
    k3s: "v1.33.4+k3s1",
    headscale: "v0.29.1",
    /**
     * derper, tailscaled and tailscale from one tailscale.com release: the one nearest the
     * v1.101.0-pre headscale v0.29.1 builds against that builds with Go 1.26 from the module
     * proxy (v1.104.x needs Go 1.27 and dependencies the proxy does not serve). Headscale
     * v0.29.1 accepts clients from v1.80 on.
     */
    tailscale: "v1.102.5",
    nebula: "v1.9.7",
    /**
     * Replicates Headscale's SQLite database to the S3 bucket of controlServer.replica. v0.5.18 is
     * the newest release the Go module proxy serves; its go.mod asks for go 1.26.0.
     */
    litestream: "v0.5.18",
    /** The Traefik chart k3s bundles for this release; values are checked against its schema. */
    traefikChart: "41.3.0",
} as const;
