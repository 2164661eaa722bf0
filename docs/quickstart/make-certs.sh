#!/usr/bin/env bash
# A throwaway local CA and a certificate for `localhost`, so the client's
# metadata document can be served over HTTPS on this machine.
set -euo pipefail
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=Steward quickstart CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout localhost.key -out localhost.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' > localhost.ext
openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 30 -extfile localhost.ext -out localhost.pem 2>/dev/null
rm -f localhost.csr localhost.ext ca.srl
echo "wrote ca.pem, localhost.pem and localhost.key in $(pwd)"
