#!/usr/bin/env bash
# One authorization-code flow with PKCE, as a browser and a client would do
# it, with curl: sign in, approve, receive the code on the loopback redirect
# URI, exchange it for tokens, then refresh.
set -euo pipefail
AS=${AS:-http://127.0.0.1:8080}
USERNAME=${USERNAME:-alice}
PASSWORD=${PASSWORD:-correct-horse-battery}
CLIENT=https://localhost:8443/client.json
# Registered as http://localhost/callback: a loopback redirect URI matches on any port.
REDIRECT=http://localhost:54321/callback
VERIFIER=$(openssl rand -hex 32)
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
AUTHORIZE="$AS/authorize?response_type=code&client_id=$CLIENT&redirect_uri=$REDIRECT&code_challenge=$CHALLENGE&code_challenge_method=S256&state=s1"
jar=$(mktemp); page=$(mktemp); trap 'rm -f "$jar" "$page"' EXIT
field() { grep -o "name=\"$1\" value=\"[^\"]*\"" "$page" | head -n1 | cut -d'"' -f4 | sed 's/&amp;/\&/g'; }

echo "1. GET /authorize -> the login page"
curl -sf -c "$jar" -b "$jar" "$AUTHORIZE" > "$page"
echo "2. sign in as $USERNAME -> the consent page"
curl -sf -c "$jar" -b "$jar" "$AS/authorize/login" \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD" \
  --data-urlencode "csrf=$(field csrf)" --data-urlencode "request=$(field request)" > "$page"
grep -o 'The application at <span class="host">[^<]*' "$page" | sed 's/<span class="host">//'
echo "3. approve -> redirected to the client"
LOCATION=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$AS/authorize/consent" \
  --data decision=approve --data-urlencode "csrf=$(field csrf)" --data-urlencode "request=$(field request)")
echo "   $LOCATION"
CODE=$(printf %s "$LOCATION" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
[ -n "$CODE" ] || { echo "no code in the redirect" >&2; exit 1; }

echo "4. POST /token (authorization_code + PKCE verifier)"
TOKENS=$(curl -sf "$AS/token" --data grant_type=authorization_code --data "code=$CODE" \
  --data-urlencode "client_id=$CLIENT" --data-urlencode "redirect_uri=$REDIRECT" \
  --data "code_verifier=$VERIFIER")
echo "   $TOKENS"
REFRESH=$(printf %s "$TOKENS" | sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')

echo "5. POST /token (refresh_token: rotated on every use)"
curl -sf "$AS/token" --data grant_type=refresh_token --data "refresh_token=$REFRESH" \
  --data-urlencode "client_id=$CLIENT"
echo
