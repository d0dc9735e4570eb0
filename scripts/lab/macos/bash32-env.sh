# shellcheck shell=bash
# BASH_ENV of a macOS-shaped lab host's bash sessions (scripts/lab/macos): macOS's /bin/bash
# is 3.2, the host's is 5.x. BASH_COMPAT=3.2 (set beside this by sshd_config's SetEnv) makes
# bash 5 behave as 3.2 where it keeps that behaviour; this file switches off the builtins 3.2
# does not have, so a step that calls them fails here as it would on the Mac ("command not
# found", 127). What cannot be switched off (declare -A, ${x,,}, &>>, coproc, ...) is what
# test/scripts/lab/macos/bash32.test.ts finds statically in every Mac-bound script.
enable -n mapfile readarray 2>/dev/null || true
# The Mac's PATH (path_helper's order), whatever sshd's default is.
PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export PATH
