#!/usr/bin/env bash
# Usage: bash scripts/with-node.sh <command> [args...]
#
# Runs a command on the Node .nvmrc names. The npm scripts that run TypeScript go through here, so
# `npm run demo` and `npm test` work whatever node the machine has (18 or newer, enough for npm
# itself): when it is not Node 24, scripts/ensure-node.sh provides one in .tools/node and one line
# on stderr says so. The command replaces this shell (exec), so a signal sent to npm's child
# reaches the command itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(bash "$root/scripts/ensure-node.sh")
current=$(command -v node || true)
if [ "$bin/node" != "$current" ]; then
  echo "pushpool: running on Node $("$bin/node" --version) from ${bin#"$root"/} (.nvmrc asks for $(tr -dc '0-9' < "$root/.nvmrc"); this machine's node is $(node --version 2>/dev/null || echo missing))" >&2
  export PATH="$bin:$PATH"
fi
exec "$@"
