# Installs the pinned Headscale and Nebula and mounts the Headscale volume (waiting, bounded,
# for DigitalOcean to attach it). Idempotent: a rerun on a built host changes nothing.
# Over SSH it starts nothing: the file deliveries after it write each unit and config and
# restart their service. From cloud-init (START=yes) every file is already in place, so it
# hands the keys to the headscale user and starts both services itself.
# With a replica (LITESTREAM_VERSION not "none") it also installs the pinned Litestream; the
# restore itself is headscale-restore.service, which Headscale's drop-in runs before every start
# (components/control/litestream.ts), so a rebuilt droplet on an empty volume restores on its
# first start and a host with a database never has it overwritten.
# Params: VOLUME_DEVICE (a device path, or "none" on an existing host), HEADSCALE_VERSION,
# NEBULA_VERSION, LITESTREAM_VERSION (a version, or "none"), START (yes | no).
device="$(param VOLUME_DEVICE)"
headscale_version="$(param HEADSCALE_VERSION)"
headscale_version="${headscale_version#v}"
nebula_version="$(param NEBULA_VERSION)"
litestream_version="$(param LITESTREAM_VERSION)"
start="$(param START)"
state=/var/lib/headscale
log() { echo "bootstrap: $*"; }
# Over SSH on a new droplet, cloud-init may still be installing: never race its dpkg run.
if [ "$start" != yes ] && command -v cloud-init >/dev/null 2>&1; then
  timeout 900 cloud-init status --wait >/dev/null || log "cloud-init reports an error; continuing"
fi
arch="$(dpkg --print-architecture)"
if [ "$device" != none ]; then
  for ((waited = 0; waited < 120; waited++)); do
    [ -e "$device" ] && break
    sleep 5
  done
  [ -e "$device" ] || { echo "bootstrap: volume $device was never attached" >&2; exit 1; }
  mkdir -p "$state"
  # fstab's second field is the mount point (fields split on any blanks, tabs too).
  if ! awk -v state="$state" '$1 !~ /^#/ && $2 == state { found = 1 } END { exit !found }' /etc/fstab 2>/dev/null; then
    cp /etc/fstab /etc/fstab.shortcircuit.tmp
    echo "$device $state ext4 defaults,nofail,discard 0 2" >>/etc/fstab.shortcircuit.tmp
    mv -f /etc/fstab.shortcircuit.tmp /etc/fstab
  fi
  mountpoint -q "$state" || mount "$state"
fi
work="$(mktemp -d)"
cleanup_paths+=("$work")
# curl's own error names only the server: say what was being fetched (a host without internet).
download() {
  curl -fsSL --retry 5 -o "$1" "$2" || { echo "bootstrap: could not download $3 from $2" >&2; exit 1; }
}
# Checks download $1 against its line for file name $3 in the release's checksums file $2
# (sha256sum format) before anything is installed. See components/versions.ts for why the
# release's own list is the reference.
verify() {
  local want got
  want="$(awk -v name="$3" '$2 == name || $2 == "*" name || $2 == "./" name { print $1; exit }' "$2")"
  if [ -z "$want" ]; then
    echo "bootstrap: $4: the release's checksums list no $3; refusing to install it" >&2
    exit 1
  fi
  got="$(sha256sum "$1" | cut -d ' ' -f 1)"
  if [ "$got" != "$want" ]; then
    echo "bootstrap: $4: the download's sha256 $got is not the release's $want; refusing to install it" >&2
    exit 1
  fi
}
# A service whose binary this run replaces runs the old one until it restarts. Its delivery, the
# step after this one (which runs again whenever the pinned version changes), restarts it and
# checks it is healthy. Marked before the binary is replaced, so a run cut short leaves the
# restart to do. From cloud-init the services start below, on the new binaries.
restart_pending() {
  if [ "$start" != yes ]; then
    local marker
    marker="$(restart_pending_marker "$1")"
    mkdir -p "$(dirname "$marker")"
    : >"$marker"
  fi
}
# Litestream before Headscale: should the .deb start an enabled headscale.service, its drop-in's
# restore (cloud-init wrote it) already finds the binary. Release archives name the architecture
# as goreleaser does (amd64 -> x86_64); its checksums.txt lists them (the release's .goreleaser.yml).
if [ "$litestream_version" != none ] && ! litestream version 2>/dev/null | grep -F "${litestream_version#v}" >/dev/null; then
  case "$arch" in
    amd64) litestream_arch=x86_64 ;;
    arm64) litestream_arch=arm64 ;;
    *) echo "bootstrap: no Litestream release archive for architecture $arch" >&2; exit 1 ;;
  esac
  release="https://github.com/benbjohnson/litestream/releases/download/${litestream_version}"
  tarball="litestream-${litestream_version#v}-linux-${litestream_arch}.tar.gz"
  download "$work/$tarball" "$release/$tarball" "litestream ${litestream_version}"
  download "$work/litestream-checksums.txt" "$release/checksums.txt" "litestream ${litestream_version} checksums"
  verify "$work/$tarball" "$work/litestream-checksums.txt" "$tarball" "litestream ${litestream_version}"
  tar -xzf "$work/$tarball" -C "$work" litestream
  restart_pending litestream.service
  install -m 0755 "$work/litestream" /usr/local/bin/litestream.shortcircuit-new
  mv -f /usr/local/bin/litestream.shortcircuit-new /usr/local/bin/litestream
  log "installed litestream ${litestream_version}"
fi
# confold keeps our /etc/headscale/config.yaml, already in place (cloud-init, an earlier
# delivery), over the package's; confdef takes the default wherever dpkg has one. Without them
# dpkg stops at its conffile prompt with no terminal to answer it, and postinst (which creates
# the headscale user) never runs.
dpkg_keeps_ours=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# grep without -q: an early exit would SIGPIPE the tool and, under pipefail, fail the check.
if ! headscale version 2>/dev/null | grep -F "$headscale_version" >/dev/null; then
  release="https://github.com/juanfont/headscale/releases/download/v${headscale_version}"
  deb="headscale_${headscale_version}_linux_${arch}.deb"
  download "$work/$deb" "$release/$deb" "headscale ${headscale_version}"
  download "$work/headscale-checksums.txt" "$release/checksums.txt" "headscale ${headscale_version} checksums"
  verify "$work/$deb" "$work/headscale-checksums.txt" "$deb" "headscale ${headscale_version}"
  # The package's postinst restarts Headscale itself on an upgrade, but checks nothing.
  restart_pending headscale.service
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${dpkg_keeps_ours[@]}" "$work/$deb"
  log "installed headscale ${headscale_version}"
fi
if ! nebula -version 2>/dev/null | grep -F "${nebula_version#v}" >/dev/null; then
  release="https://github.com/slackhq/nebula/releases/download/${nebula_version}"
  tarball="nebula-linux-${arch}.tar.gz"
  download "$work/$tarball" "$release/$tarball" "nebula ${nebula_version}"
  download "$work/nebula-checksums.txt" "$release/SHASUM256.txt" "nebula ${nebula_version} checksums"
  verify "$work/$tarball" "$work/nebula-checksums.txt" "$tarball" "nebula ${nebula_version}"
  # Unpacked beside the binaries and renamed in: a running nebula is never half overwritten.
  tar -xzf "$work/$tarball" -C "$work" nebula nebula-cert
  restart_pending nebula.service
  install -m 0755 "$work/nebula" /usr/local/bin/nebula.shortcircuit-new
  install -m 0755 "$work/nebula-cert" /usr/local/bin/nebula-cert.shortcircuit-new
  mv -f /usr/local/bin/nebula.shortcircuit-new /usr/local/bin/nebula
  mv -f /usr/local/bin/nebula-cert.shortcircuit-new /usr/local/bin/nebula-cert
  log "installed nebula ${nebula_version}"
fi
install -d -m 0750 "$state/cache" /var/run/headscale
chown -R headscale:headscale "$state" /var/run/headscale
if [ "$start" = yes ]; then
  chown headscale:headscale /etc/headscale/noise_private.key /etc/headscale/derp_server_private.key
  systemctl daemon-reload
  # headscale.service first runs headscale-restore.service (its drop-in): on a new, empty volume
  # Headscale starts on the replica's database, never on a new one while a replica exists.
  services=(nebula.service headscale.service)
  if [ "$litestream_version" != none ]; then
    services+=(litestream.service)
  fi
  systemctl enable --now "${services[@]}"
  log "started ${services[*]}"
fi
log "done"
