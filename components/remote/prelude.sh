# shellcheck shell=bash disable=SC2317 # not every step calls every reader below
# Prepended to every remote step (remote/scripts.ts). Reads the payload of remote/payload.ts
# from stdin: `KEY=value` lines up to a blank line, then framed files.
set -euo pipefail
# Byte semantics: read -N and ${#…} count bytes, so the framing cannot drift on UTF-8.
export LC_ALL=C
declare -A P=()
while IFS= read -r line && [ -n "$line" ]; do
  P["${line%%=*}"]="${line#*=}"
done
# Prints a parameter; a missing one is a programming error, never a silent empty value.
param() {
  [ -n "${P[$1]+set}" ] || { echo "shortcircuit: missing parameter $1" >&2; exit 2; }
  printf '%s' "${P[$1]}"
}
# Reads every framed file into directory $1 as $1/<n> and lists `<n> <mode> <target>` in
# $1/.manifest. A short read (a cut connection) fails the step before anything is installed.
read_files() {
  local dir="$1" header tag mode size target content n=0
  : >"$dir/.manifest"
  while IFS= read -r header; do
    [ -n "$header" ] || continue
    read -r tag mode size target <<<"$header"
    [ "$tag" = "@file" ] || { echo "shortcircuit: bad payload header" >&2; exit 2; }
    case "$mode" in [0-7][0-7][0-7][0-7]) ;; *) echo "shortcircuit: bad mode in payload" >&2; exit 2 ;; esac
    case "$size" in '' | *[!0-9]*) echo "shortcircuit: bad size in payload" >&2; exit 2 ;; esac
    case "$target" in */../* | */.. | */./* | *' '* | '') echo "shortcircuit: bad target in payload" >&2; exit 2 ;; esac
    content=""
    if [ "$size" -gt 0 ]; then
      IFS= read -r -d '' -N "$size" content || true
    fi
    if [ "${#content}" -ne "$size" ]; then
      echo "shortcircuit: payload cut short at $target (${#content} of $size bytes)" >&2
      exit 2
    fi
    n=$((n + 1))
    printf '%s' "$content" >"$dir/$n"
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
