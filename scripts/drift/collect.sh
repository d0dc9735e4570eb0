# Drift collector: runs after components/remote/prelude.sh (strict mode, LC_ALL=C, `param`), in
# one SSH session per host, and only reads. It writes no file anywhere on the host (no temp
# files, no cache: kubectl's cache dir points at a path that cannot be created), restarts
# nothing and changes no state; everything goes to stdout as records, one a line, fields
# separated by single spaces (planned paths are plain segments without spaces):
#   drift-collector 1                       format version
#   clock <realtime s.ns> <monotonic ns|-> <source>
#   file <path> present <sha256|-> <octal mode> <user:group> <mtime s.ns> <type>
#   file <path> missing
#   text <path> <bytes>                     then exactly <bytes> bytes of content and a newline
#   iface <name> present | missing | unreadable (neither ip nor ifconfig on the host)
#   addr <iface> <address/prefix>
#   route52 <route as ip prints it>
#   tailscale accept-routes <yes|no|unknown>
#   svc <name> <KEY>=<value>                systemd properties, or launchd's state (LoadState,
#                                           ActiveState, LoadedJobSha256: the job file it was
#                                           loaded from, as deliver-files.sh recorded it)
#   pending <service> <mtime s.ns>          prelude's restart_pending_marker <service> exists
#   knode <node> <config annotation|-> <unschedulable true|false> <cordoned by a rollout true|false>
#   kerror <first line of kubectl's error>
#   end
# Params: PATHS (paths to stat and hash), TEXT_PATHS (public paths whose content to print,
# at most TEXT_LIMIT bytes each), IFACES, SERVICES (systemd:<unit> | launchd:<label> ...),
# KUBECTL (yes: list every node's config annotation and cordon, on the genesis).
# The list parameters are read word by word into arrays (prelude's param_words), never
# expanded unquoted, so no word is taken as a pattern.
# It runs on Linux (GNU coreutils) and on macOS (BSD userland, bash 3.2): stat's options, the
# hash tool and date's %N differ; docs/macos-userland.md lists what each side has.
paths=(); param_words PATHS paths
text_paths=(); param_words TEXT_PATHS text_paths
limit="$(param TEXT_LIMIT)"
ifaces=(); param_words IFACES ifaces
services=(); param_words SERVICES services
kubectl="$(param KUBECTL)"
# GNU stat takes -c FORMAT; BSD stat refuses -c ("illegal option") and takes -f FORMAT with
# its own letters: %Mp%Lp the mode in octal (with a leading 0 that GNU's %a lacks), %Su:%Sg
# the names, %.9Fm the mtime as seconds.nanoseconds, %HT the type ("Regular File").
if stat -c %a / >/dev/null 2>&1; then
  file_stat() { stat -c '%a %U:%G %.9Y %F' -- "$1"; }
  mtime_of() { stat -c '%.9Y' -- "$1"; }
else
  file_stat() { stat -f '%Mp%Lp %Su:%Sg %.9Fm %HT' -- "$1"; }
  mtime_of() { stat -f '%.9Fm' -- "$1"; }
fi
# macOS has no sha256sum; its shasum -a 256 prints the same "<hash>  <path>" line.
if command -v sha256sum >/dev/null 2>&1; then
  sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }
else
  sha256_of() { shasum -a 256 -- "$1" | cut -d' ' -f1; }
fi
echo "drift-collector 1"
realtime="$(date +%s.%N)"
# BSD date has no %N and prints the letter N: whole seconds there.
case "$realtime" in *.N) realtime="${realtime%.N}.000000000" ;; esac
mono="$(awk '/^now at/ { print $3; exit }' /proc/timer_list 2>/dev/null || true)"
if [ -n "$mono" ]; then
  echo "clock $realtime $mono timer_list"
else
  # Boot time, not CLOCK_MONOTONIC: equal unless the host has been suspended.
  up="$(cut -d' ' -f1 /proc/uptime 2>/dev/null || true)"
  echo "clock $realtime ${up:--} uptime"
fi

for path in ${paths[@]+"${paths[@]}"}; do
  if [ -e "$path" ] || [ -L "$path" ]; then
    read -r mode owner mtime kind < <(file_stat "$path")
    # BSD's mode has a leading 0 (0644); its type names are capitalised (GNU's are not). GNU
    # names an empty file "regular empty file": it is a regular file all the same.
    case "$mode" in 0?*) mode="${mode#0}" ;; esac
    case "$kind" in
      "Regular File" | "regular empty file") kind="regular file" ;;
      Directory) kind=directory ;;
      "Symbolic Link") kind="symbolic link" ;;
      "Fifo File") kind=fifo ;;
      Socket) kind=socket ;;
      "Character Device") kind="character special file" ;;
      "Block Device") kind="block special file" ;;
    esac
    sum=-
    if [ -f "$path" ] && [ -r "$path" ]; then
      sum="$(sha256_of "$path")"
    fi
    echo "file $path present $sum $mode $owner $mtime ${kind// /_}"
  else
    echo "file $path missing"
  fi
done

for path in ${text_paths[@]+"${text_paths[@]}"}; do
  if [ -f "$path" ] && [ -r "$path" ]; then
    # BSD wc pads the count with spaces.
    size="$(head -c "$limit" -- "$path" | wc -c | tr -d ' ')"
    echo "text $path $size"
    head -c "$size" "$path"
    echo
  fi
done

# Prints the prefix length of a netmask as ifconfig prints it: 0xffffff00 (macOS) or
# 255.255.255.0 (net-tools). A contiguous mask has only these digits and octets.
mask_bits() {
  local mask="$1" bits=0 digit octet
  case "$mask" in
    0x*)
      mask="${mask#0x}"
      while [ -n "$mask" ]; do
        digit="${mask%"${mask#?}"}"
        mask="${mask#?}"
        case "$digit" in f | F) bits=$((bits + 4)) ;; e | E) bits=$((bits + 3)) ;; c | C) bits=$((bits + 2)) ;; 8) bits=$((bits + 1)) ;; esac
      done
      ;;
    *)
      for octet in ${mask//./ }; do
        case "$octet" in 255) bits=$((bits + 8)) ;; 254) bits=$((bits + 7)) ;; 252) bits=$((bits + 6)) ;; 248) bits=$((bits + 5)) ;; 240) bits=$((bits + 4)) ;; 224) bits=$((bits + 3)) ;; 192) bits=$((bits + 2)) ;; 128) bits=$((bits + 1)) ;; esac
      done
      ;;
  esac
  echo "$bits"
}
for iface in ${ifaces[@]+"${ifaces[@]}"}; do
  if command -v ip >/dev/null 2>&1; then
    if ip link show dev "$iface" >/dev/null 2>&1; then
      echo "iface $iface present"
      ip -4 -o addr show dev "$iface" 2>/dev/null | awk -v i="$iface" '{ print "addr " i " " $4 }'
    else
      echo "iface $iface missing"
    fi
  elif command -v ifconfig >/dev/null 2>&1; then
    # macOS: `inet 192.168.20.2 netmask 0xffffff00 broadcast ...`.
    if out="$(ifconfig "$iface" 2>/dev/null)"; then
      echo "iface $iface present"
      while read -r word address _ mask _; do
        if [ "$word" = inet ]; then echo "addr $iface $address/$(mask_bits "$mask")"; fi
      done < <(printf '%s\n' "$out")
    else
      echo "iface $iface missing"
    fi
  else
    echo "iface $iface unreadable"
  fi
done

if command -v ip >/dev/null 2>&1; then
  ip -4 route show table 52 2>/dev/null | sed 's/^/route52 /' || true
fi
if command -v tailscale >/dev/null 2>&1; then
  echo "tailscale accept-routes $(tailscale_accept_routes)"
fi

for entry in ${services[@]+"${services[@]}"}; do
  manager="${entry%%:*}"
  name="${entry#*:}"
  case "$manager" in
    systemd)
      systemctl show "$name" -p LoadState -p ActiveState -p SubState -p ActiveEnterTimestamp -p ActiveEnterTimestampMonotonic -p NeedDaemonReload 2>/dev/null |
        while IFS= read -r line; do printf 'svc %s %s\n' "$name" "${line// /_}"; done || true
      ;;
    launchd)
      if ! job="$(launchctl print "system/$name" 2>/dev/null)"; then
        echo "svc $name LoadState=not-found"
      else
        case "$job" in
          *'state = running'*) echo "svc $name ActiveState=active" ;;
          *) echo "svc $name ActiveState=inactive" ;;
        esac
      fi
      record="/var/lib/shortcircuit/launchd-loaded.$name"
      if [ -f "$record" ]; then echo "svc $name LoadedJobSha256=$(sha256_of "$record")"; fi
      ;;
  esac
  marker="$(restart_pending_marker "$name")"
  if [ -e "$marker" ]; then
    echo "pending $name $(mtime_of "$marker")"
  fi
done

if [ "$kubectl" = yes ]; then
  if command -v k3s >/dev/null 2>&1; then
    # `|` between the fields: read splits on runs of blanks, so an empty field would shift the rest.
    template='{range .items[*]}{.metadata.name}{"|"}{.metadata.annotations.shortcircuit\.kub0\.io/config-sha256}{"|"}{.spec.unschedulable}{"|"}{.metadata.annotations.shortcircuit\.kub0\.io/cordoned-by-rollout}{"\n"}{end}'
    if out="$(KUBECACHEDIR=/dev/null/shortcircuit-drift k3s kubectl --request-timeout=10s get nodes -o "jsonpath=$template" 2>&1)"; then
      while IFS='|' read -r node annotation unschedulable by_rollout; do
        [ -n "$node" ] || continue
        [ -z "$by_rollout" ] || by_rollout=true
        echo "knode $node ${annotation:--} ${unschedulable:-false} ${by_rollout:-false}"
      done <<<"$out"
    else
      echo "kerror ${out%%$'\n'*}"
    fi
  else
    echo "kerror k3s is not installed"
  fi
fi
echo "end"
