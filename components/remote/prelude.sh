# shellcheck shell=bash disable=SC2317 # not every step calls every reader below
# Prepended to every remote step (remote/scripts.ts). Reads the payload of remote/payload.ts
# from stdin: `KEY=value` lines up to a blank line, then framed files. Written for bash 3.2 too
# (macOS's /bin/bash runs the Nebula and derper steps on the Mac hosts): no associative arrays,
# no read -N, and empty arrays expanded with ${a[@]+…}.
set -euo pipefail
export LC_ALL=C
# Paths the step removes however it exits (its staging directory, a lock it holds).
cleanup_paths=()
# Bounded output lines. The command provider (1.2.1) reads the streams it logs through one
# default bufio.Scanner: at a line of 64 KiB it stops reading, nothing drains the output any
# more, and the step hangs (scripts/lab/provider-doubles/README.md). The launcher
# (remote/remoteCommand.ts) passes the step's `logging` as $1, and every stream the provider
# logs is copied through fold_long_lines: no line of it is longer than 16 KiB, so the
# provider's log pipe, where the two streams meet, never holds more than 32 KiB between two
# newlines. A stream it does not log (the kubeconfig's stdout: logging "none") and a script
# run without the launcher (drift's collector, cloud-init) go out byte for byte. The copies
# are background readers of FIFOs, not process substitutions (bash 3.2 cannot wait for
# those); the step's EXIT trap closes its ends and waits for them, so no tail is lost, and
# the step's exit status is kept.
output_fold_mark=' [shortcircuit: line folded here, it goes on in the next line]'
output_copies=()
# Copies stdin to stdout, a line longer than 16000 bytes cut into pieces of at most 16000
# bytes, each piece but the last followed by $output_fold_mark: dropping each mark and the
# newline after it gives the input back. Bytes, not characters (LC_ALL=C), except that a cut
# never splits a UTF-8 character: the provider keeps output in protobuf strings, which must
# be valid UTF-8. bash's read drops NUL bytes; nothing else is changed. bash's read rather
# than awk: Debian's mawk holds input back until 4 KiB have arrived (progress lines would
# come late), and awks disagree on bytes against characters; fold(1) marks nothing and cuts
# characters.
fold_long_lines() {
  local max=16000 piece carry='' held='' holding=0 status k byte need
  local cont='' lead2='' lead3='' lead4='' i octal char
  for ((i = 128; i < 248; i++)); do
    printf -v octal '%03o' "$i"
    printf -v char '%b' "\\0$octal"
    if [ "$i" -lt 192 ]; then cont="$cont$char"; elif [ "$i" -lt 224 ]; then lead2="$lead2$char"; elif [ "$i" -lt 240 ]; then lead3="$lead3$char"; else lead4="$lead4$char"; fi
  done
  while :; do
    status=0
    IFS= read -r -n "$((max - ${#carry}))" piece || status=$?
    piece="$carry$piece"
    carry=''
    # A full piece is held until the next read tells whether its line goes on.
    if [ "$holding" = 1 ]; then
      holding=0
      if [ -z "$piece" ] && [ "$status" = 0 ]; then printf '%s\n' "$held"; continue; fi
      if [ -z "$piece" ]; then printf '%s' "$held"; return 0; fi
      printf '%s%s\n' "$held" "$output_fold_mark"
    fi
    if [ "$status" != 0 ]; then printf '%s' "$piece"; return 0; fi
    if [ "${#piece}" -lt "$max" ]; then printf '%s\n' "$piece"; continue; fi
    # The piece is full: a UTF-8 character cut at its end moves on to the next piece.
    for ((k = 1; k <= 3; k++)); do
      byte="${piece:$((${#piece} - k)):1}"
      case "$cont" in *"$byte"*) continue ;; esac
      need=0
      case "$lead2" in *"$byte"*) need=2 ;; esac
      case "$lead3" in *"$byte"*) need=3 ;; esac
      case "$lead4" in *"$byte"*) need=4 ;; esac
      if [ "$need" -gt "$k" ]; then carry="${piece:$((${#piece} - k))}"; fi
      break
    done
    held="${piece:0:$((${#piece} - ${#carry}))}"
    holding=1
  done
}
case "${1-}" in
  stdout | stderr | stdoutAndStderr)
    output_fifos="$(mktemp -d "${TMPDIR:-/tmp}/shortcircuit-output.XXXXXX")"
    # Both copies start before either stream is redirected, so neither holds the other's FIFO.
    if [ "$1" != stderr ]; then
      mkfifo "$output_fifos/stdout"
      (trap - EXIT; exec <"$output_fifos/stdout"; fold_long_lines) &
      output_copies+=("$!")
    fi
    if [ "$1" != stdout ]; then
      mkfifo "$output_fifos/stderr"
      (trap - EXIT; exec <"$output_fifos/stderr" >&2; fold_long_lines) &
      output_copies+=("$!")
    fi
    if [ "$1" != stderr ]; then exec >"$output_fifos/stdout"; fi
    if [ "$1" != stdout ]; then exec 2>"$output_fifos/stderr"; fi
    rm -rf "$output_fifos"
    ;;
esac
# On exit, whatever the status: remove cleanup_paths, then close the step's ends of the FIFOs
# and wait for the copies to pass on the rest. Nothing the steps start keeps the FIFOs open
# (services start under systemd or launchd, not as children of the step); if something did,
# its copy is ended after 20 s so the step finishes instead of hanging.
finish_step() {
  local status=$? pid polls=0 running
  rm -rf ${cleanup_paths[@]+"${cleanup_paths[@]}"} || status=1
  if [ "${#output_copies[@]}" -gt 0 ]; then
    exec >/dev/null 2>&1
    while [ "$polls" -lt 400 ]; do
      running=0
      for pid in "${output_copies[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then running=1; fi
      done
      [ "$running" = 1 ] || break
      sleep 0.05
      polls=$((polls + 1))
    done
    for pid in "${output_copies[@]}"; do
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
  exit "$status"
}
trap finish_step EXIT
while IFS= read -r line && [ -n "$line" ]; do
  key="${line%%=*}"
  case "$key" in [A-Z]*) ;; *) echo "shortcircuit: bad parameter line in payload" >&2; exit 2 ;; esac
  case "$key" in *[!A-Z0-9_]*) echo "shortcircuit: bad parameter line in payload" >&2; exit 2 ;; esac
  printf -v "P_$key" '%s' "${line#*=}"
done
# Prints a parameter; a missing one is a programming error, never a silent empty value.
param() {
  local name="P_$1"
  [ -n "${!name+set}" ] || { echo "shortcircuit: missing parameter $1" >&2; exit 2; }
  printf '%s' "${!name}"
}
# Reads parameter $1, a list of words separated by spaces (paths, names, CIDRs), into the
# array named $2, which the caller declares (`a=(); param_words LIST a`). read -a splits on
# the spaces and nothing else: no word is expanded as a pattern against the host's files, as
# an unquoted $(param …) list is without set -f. Iterate it as ${a[@]+"${a[@]}"} (bash 3.2
# calls an empty array unbound under set -u). A process substitution, not a here-string: bash
# 3.2 writes a here-string to a temporary file, and the drift collector writes none.
param_words() {
  local value
  value="$(param "$1")"
  IFS=' ' read -r -a "$2" < <(printf '%s\n' "$value")
}
# Reads every framed file into directory $1 as $1/<n> and lists `<n> <mode> <target>` in
# $1/.manifest. A short read (a cut connection) fails the step before anything is installed.
read_files() {
  local dir="$1" header tag mode size target got n=0
  : >"$dir/.manifest"
  while IFS= read -r header; do
    [ -n "$header" ] || continue
    read -r tag mode size target <<<"$header"
    [ "$tag" = "@file" ] || { echo "shortcircuit: bad payload header" >&2; exit 2; }
    case "$mode" in [0-7][0-7][0-7][0-7]) ;; *) echo "shortcircuit: bad mode in payload" >&2; exit 2 ;; esac
    case "$size" in '' | *[!0-9]*) echo "shortcircuit: bad size in payload" >&2; exit 2 ;; esac
    case "$target" in */../* | */.. | */./* | *' '* | '') echo "shortcircuit: bad target in payload" >&2; exit 2 ;; esac
    n=$((n + 1))
    # Exactly $size bytes, whatever they are: dd reads the pipe no further (bash's own read
    # took the header byte by byte). One block filled by as many reads as it takes
    # (iflag=fullblock: GNU, a recent macOS); an older BSD dd, or bs=0 for an empty file, fails
    # before reading anything and bs=1 reads them byte by byte.
    dd bs="$size" count=1 iflag=fullblock of="$dir/$n" 2>/dev/null || dd bs=1 count="$size" of="$dir/$n" 2>/dev/null
    got="$(wc -c <"$dir/$n" | tr -d ' ')"
    if [ "$got" -ne "$size" ]; then
      echo "shortcircuit: payload cut short at $target ($got of $size bytes)" >&2
      exit 2
    fi
    printf '%s %s %s\n' "$n" "$mode" "$target" >>"$dir/.manifest"
  done
}
# The staged copy of target $2 in directory $1, or nothing.
staged() {
  local n target
  while read -r n _ target; do
    if [ "$target" = "$2" ]; then
      printf '%s/%s' "$1" "$n"
      return 0
    fi
  done <"$1/.manifest"
  return 1
}
# One run at a time: takes lock directory $1 (naming its holder's pid), waiting up to 120 s; a
# holder that died without cleaning up (kill -9, power loss) is taken over. The lock goes with
# the step's exit.
take_lock() {
  local lock="$1" holder waited
  mkdir -p "$(dirname "$lock")"
  for ((waited = 0; waited < 120; waited++)); do
    if mkdir "$lock" 2>/dev/null; then
      echo "$$" >"$lock/pid"
      cleanup_paths+=("$lock")
      return 0
    fi
    holder="$(cat "$lock/pid" 2>/dev/null || true)"
    if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then
      # Of several waiters only one renames the dead holder's lock away; one that finds it has
      # moved a live lock instead (taken meanwhile) puts it back.
      if mv "$lock" "$lock.dead.$$" 2>/dev/null; then
        if [ "$(cat "$lock.dead.$$/pid" 2>/dev/null || true)" = "$holder" ]; then
          rm -rf "$lock.dead.$$"
        else
          mv "$lock.dead.$$" "$lock" 2>/dev/null || rm -rf "$lock.dead.$$"
        fi
      fi
      continue
    fi
    sleep 1
  done
  echo "shortcircuit: another run has held $lock for 120 s; not touching what it guards" >&2
  exit 1
}
# GNU sync fsyncs the files it is given; BSD sync takes none and flushes everything.
if sync --help >/dev/null 2>&1; then flush() { sync "$@"; }; else flush() { sync; }; fi
# The one atomic write: puts the bytes of file $1 at $2 with mode $3 and, if $4 is given,
# owner $4 (user:group), so that $2 is at every moment either its old or its new content. The
# new file is written beside $2 (same file system: the rename is atomic) and fsynced, then
# renamed over $2 by rename_into_place (which $5 is passed on to). The temporary file goes with
# the step's exit if anything fails. Every command is checked here, not left to set -e: bash
# ignores set -e inside a function called from `if`, `&&` or `||` (or a command substitution),
# and a write cut short by a full disk would then be renamed into place. The mktemp template
# is a path ending in X's, which GNU and BSD (macOS) mktemp both fill in.
write_atomically() {
  local source="$1" target="$2" mode="$3" owner="${4-}" tmp
  tmp="$(mktemp "$target.shortcircuit.XXXXXX")" || return 1
  cleanup_paths+=("$tmp")
  cat "$source" >"$tmp" || return 1
  chmod "$mode" "$tmp" || return 1
  if [ -n "$owner" ]; then chown "$owner" "$tmp" || return 1; fi
  flush "$tmp" || return 1
  rename_into_place "$tmp" "$2" "${5-}"
}
# Renames file $1 (already complete, mode and owner set, fsynced, beside $2) over $2 and fsyncs
# the directory. With $3 = keep-previous, what was at $2 stays as $2.previous: a hard link, so
# keeping it needs no space and cannot leave a half-copied file on a full disk.
rename_into_place() {
  if [ "${3-}" = keep-previous ] && [ -f "$2" ]; then ln -f "$2" "$2.previous" || return 1; fi
  mv -f "$1" "$2" || return 1
  flush "$(dirname "$2")"
}
# The file that says a service's restart is still to do: a delivery or the control server's
# bootstrap leaves it from the first write until the service is back up on the new files, the next
# run restarts a service that has one, and drift reports it. One spelling for all three.
restart_pending_marker() { printf '/var/lib/shortcircuit/restart-pending.%s\n' "$1"; }
# Prints tailscale's accept-routes preference: yes, no or unknown. `tailscale get accept-routes`
# prints the value alone (true/false; the pinned v1.102.5 has `get`). An older client has only
# `tailscale debug prefs`, the prefs as indented JSON (one tab per level, one key per line), where
# the preference is the top-level key RouteAll: its line is matched whole, so a nested key of the
# same name or a value elsewhere cannot answer for it. Anything else is unknown, never a guess.
tailscale_accept_routes() {
  local value line
  value="$(tailscale get accept-routes 2>/dev/null)" || value=""
  case "$value" in
    true) echo yes; return 0 ;;
    false) echo no; return 0 ;;
  esac
  while IFS= read -r line; do
    case "${line%,}" in
      $'\t"RouteAll": true') echo yes; return 0 ;;
      $'\t"RouteAll": false') echo no; return 0 ;;
    esac
  done < <(tailscale debug prefs 2>/dev/null || true)
  echo unknown
}
