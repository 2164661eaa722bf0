#!/usr/bin/env bash
# The browser's part of an authorization request, with curl: open the
# authorization URL, sign in on the login page, approve on the consent page.
# Prints where Steward redirects the browser (the client's redirect URI with
# `code`, `state` and `iss`); with --follow also delivers it there, as a
# browser would.
# Usage: approve.sh [--follow] AUTHORIZATION_URL
set -euo pipefail
follow=false
if [ "${1:-}" = "--follow" ]; then follow=true; shift; fi
url=${1:?usage: approve.sh [--follow] AUTHORIZATION_URL}
USERNAME=${USERNAME:-alice}
PASSWORD=${PASSWORD:-correct-horse-battery}
AS=$(printf %s "$url" | sed -E 's#^(https?://[^/]+).*#\1#')
jar=$(mktemp); page=$(mktemp); trap 'rm -f "$jar" "$page"' EXIT
field() { grep -o "name=\"$1\" value=\"[^\"]*\"" "$page" | head -n1 | cut -d'"' -f4 | sed 's/&amp;/\&/g'; }

curl -sf -c "$jar" -b "$jar" "$url" > "$page"
curl -sf -c "$jar" -b "$jar" "$AS/authorize/login" \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD" \
  --data-urlencode "csrf=$(field csrf)" --data-urlencode "request=$(field request)" > "$page"
grep -q 'name="decision"' "$page" || { echo "approve.sh: no consent page (wrong password?)" >&2; exit 1; }
location=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$AS/authorize/consent" \
  --data decision=approve --data-urlencode "csrf=$(field csrf)" --data-urlencode "request=$(field request)")
[ -n "$location" ] || { echo "approve.sh: Steward did not redirect" >&2; exit 1; }
echo "$location"
if $follow; then curl -s "$location" > /dev/null; fi
