#!/usr/bin/env bash
# Generates the cluster's certificates and kubeconfigs with openssl, once (kept across
# cluster-down/up so a warm start reuses them; `make cluster-down PURGE=1` removes them).
set -euo pipefail
source "$(dirname "$0")/common.sh"

mkdir -p "$PKI"
cd "$PKI"

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -keyout ca.key -out ca.crt -subj "/CN=lifeboat-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
if [ ! -f sa.key ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
fi

# issue NAME SUBJECT EXTENDED_KEY_USAGE [SANS]
issue() {
  local name="$1" subj="$2" eku="$3" sans="${4:-}"
  [ -f "$name.crt" ] && return 0
  local ext
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
    -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$ext"
}

api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
api_sans+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
api_sans+=",IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_API_IP"
issue apiserver "/CN=kube-apiserver" serverAuth "$api_sans"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
issue admin "/O=system:masters/CN=lifeboat-e2e-admin" clientAuth
issue controller-manager "/CN=system:kube-controller-manager" clientAuth
issue scheduler "/CN=system:kube-scheduler" clientAuth
issue kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
issue kubelet "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
issue kube-proxy "/CN=system:kube-proxy" clientAuth

# kubeconfig FILE SERVER CERT
kubeconfig() {
  local file="$1" server="$2" cert="$3"
  python3 - "$file" "$server" "$PKI/ca.crt" "$PKI/$cert.crt" "$PKI/$cert.key" <<'PY'
import base64, sys
path, server, ca, crt, key = sys.argv[1:]
b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()
open(path, "w").write(f"""apiVersion: v1
kind: Config
clusters:
- name: lifeboat-e2e
  cluster:
    server: {server}
    certificate-authority-data: {b64(ca)}
users:
- name: user
  user:
    client-certificate-data: {b64(crt)}
    client-key-data: {b64(key)}
contexts:
- name: lifeboat-e2e
  context: {{cluster: lifeboat-e2e, user: user}}
current-context: lifeboat-e2e
""")
PY
  chmod 600 "$file"
}
inner="https://127.0.0.1:6443"
kubeconfig "$PKI/admin.kubeconfig" "$inner" admin
kubeconfig "$PKI/controller-manager.kubeconfig" "$inner" controller-manager
kubeconfig "$PKI/scheduler.kubeconfig" "$inner" scheduler
kubeconfig "$PKI/kubelet.kubeconfig" "$inner" kubelet-client
kubeconfig "$PKI/kube-proxy.kubeconfig" "$inner" kube-proxy
kubeconfig "$KUBECONFIG_HOST" "https://127.0.0.1:$HOST_API_PORT" admin
