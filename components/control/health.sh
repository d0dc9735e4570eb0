# Bounded wait for Headscale's /health on this host, whatever the state of its ACME
# certificate (hence -k and --resolve to the loopback). Params: HOSTNAME, ATTEMPTS (5 s apart).
hostname="$(param HOSTNAME)"
attempts="$(param ATTEMPTS)"
for ((attempt = 0; attempt < attempts; attempt++)); do
  if curl -fsS -k --max-time 5 --resolve "${hostname}:443:127.0.0.1" "https://${hostname}/health"; then
    echo
    exit 0
  fi
  sleep 5
done
echo "headscale did not answer /health within $((attempts * 5)) s" >&2
exit 1
