# An adopted droplet learns the program's SSH key (run with the operator's key, as root): every
# other control step connects with the program's key, as on a droplet the program built. Adds
# the line once and keeps every other line. Params: PUBLIC_KEY (one OpenSSH public key line).
key="$(param PUBLIC_KEY)"
case "$key" in ssh-ed25519\ *) ;; *) echo "shortcircuit: PUBLIC_KEY is not an ssh-ed25519 key line" >&2; exit 2 ;; esac
dir="${HOME:?}/.ssh"
file="$dir/authorized_keys"
mkdir -p "$dir"
chmod 700 "$dir"
if [ -f "$file" ] && grep -qxF -- "$key" "$file"; then
  echo "the program's key is authorized already"
  exit 0
fi
tmp="$(mktemp "$dir/.authorized_keys.XXXXXX")"
cleanup_paths+=("$tmp")
if [ -f "$file" ]; then
  cat "$file" >"$tmp"
  # A last line without its newline would run into the key.
  if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then echo >>"$tmp"; fi
fi
printf '%s\n' "$key" >>"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$file"
flush "$file"
echo "authorized the program's key for $(id -un)"
