#!/usr/bin/env bash
# Makes a development certificate authority and a server certificate for this machine
# (localhost, 127.0.0.1, ::1 and the host name) under DIR (default ./certs):
#   ca.pem          the CA certificate: clients pass it as --tls_ca (or STRATA_TLS_CA)
#   server.pem      the server certificate: --tls_cert for the coordinator and workers
#   server-key.pem  its private key: --tls_key
# For development and tests only; production certificates come from your own CA.
set -euo pipefail
dir="${1:-certs}"
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 365 \
  -subj "/CN=Strata development CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr \
  -subj "/CN=localhost" 2>/dev/null
cat >server-ext.cnf <<CNF
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$(hostname)
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
CNF
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem \
  -days 365 -extfile server-ext.cnf 2>/dev/null
rm -f server.csr server-ext.cnf ca.srl
chmod 600 ca-key.pem server-key.pem
echo "dev-certs: wrote $(pwd)/{ca.pem,server.pem,server-key.pem}"
