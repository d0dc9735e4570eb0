# Prints the genesis server's kubeconfig; the program rewrites its server URL. Params: none.
cat /etc/rancher/k3s/k3s.yaml
