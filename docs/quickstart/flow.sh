#!/usr/bin/env bash
# One authorization-code flow with PKCE, as a client would do it, with curl:
# the browser's part (sign in, approve) is approve.sh; the client receives the
# code on its loopback redirect URI, exchanges it for tokens, then refreshes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
AS=${AS:-http://127.0.0.1:8080}
CLIENT=https://localhost:8443/client.json
# Registered as http://localhost/callback: a loopback redirect URI matches on any port.
REDIRECT=http://localhost:54321/callback
VERIFIER=$(openssl rand -hex 32)
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
AUTHORIZE="$AS/authorize?response_type=code&client_id=$CLIENT&redirect_uri=$REDIRECT&code_challenge=$CHALLENGE&code_challenge_method=S256&state=s1"

echo "1. the browser: GET /authorize, sign in, approve"
echo "   $AUTHORIZE"
LOCATION=$("$here/approve.sh" "$AUTHORIZE")
echo "2. redirected to the client"
echo "   $LOCATION"
CODE=$(printf %s "$LOCATION" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
[ -n "$CODE" ] || { echo "no code in the redirect" >&2; exit 1; }

echo "3. POST /token (authorization_code + PKCE verifier)"
TOKENS=$(curl -sf "$AS/token" --data grant_type=authorization_code --data "code=$CODE" \
  --data-urlencode "client_id=$CLIENT" --data-urlencode "redirect_uri=$REDIRECT" \
  --data "code_verifier=$VERIFIER")
echo "   $TOKENS"
REFRESH=$(printf %s "$TOKENS" | sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')

echo "4. POST /token (refresh_token: rotated on every use)"
curl -sf "$AS/token" --data grant_type=refresh_token --data "refresh_token=$REFRESH" \
  --data-urlencode "client_id=$CLIENT"
echo
