# shellcheck shell=bash disable=SC2317 # not every step calls every reader below
# Prepended to every remote step (remote/scripts.ts). Reads the payload of remote/payload.ts
# from stdin: `KEY=value` lines up to a blank line, then framed files. Written for bash 3.2 too
# (macOS's /bin/bash runs the Nebula and derper steps on the Mac hosts): no associative arrays,
# no read -N, and empty arrays expanded with ${a[@]+…}.
set -euo pipefail
export LC_ALL=C
# Paths the step removes however it exits (its staging directory, a lock it holds).
cleanup_paths=()
trap 'rm -rf ${cleanup_paths[@]+"${cleanup_paths[@]}"}' EXIT
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
    # took the header byte by byte).
    dd bs=1 count="$size" of="$dir/$n" 2>/dev/null
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
  local lock="$1" holder
  mkdir -p "$(dirname "$lock")"
  for _ in $(seq 1 120); do
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
