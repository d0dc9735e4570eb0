# On the genesis: uncordon, point flannel's public-ip at the new address, record the applied
# config's hash, drop a stale public-ip-overwrite. Params: NODE_NAME, FLANNEL_IP, CONFIG_SHA256.
node="$(param NODE_NAME)"
k3s kubectl uncordon "$node"
k3s kubectl annotate node "$node" "flannel.alpha.coreos.com/public-ip=$(param FLANNEL_IP)" "shortcircuit.kub0.io/config-sha256=$(param CONFIG_SHA256)" --overwrite
overwrite="$(k3s kubectl get node "$node" -o jsonpath='{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip-overwrite}')"
if [ -n "$overwrite" ]; then
  k3s kubectl annotate node "$node" flannel.alpha.coreos.com/public-ip-overwrite-
  echo "uncordon $node: removed stale public-ip-overwrite $overwrite"
fi
