#!/usr/bin/env bash
# Prints the bin directory of a Node runtime of the major version .nvmrc names: the machine's own
# node when it is that version, else one kept in .tools/node, installed the first time from the
# npm registry's node-<os>-<arch> package (the same binaries as nodejs.org's, published there, so
# a machine that reaches only package registries can still get one). Only the path goes to
# stdout; what it does goes to stderr.
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

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) os=unknown ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=unknown ;;
esac
package="node-$os-$arch"
echo "pushpool: installing Node $want into .tools/node from the npm registry ($package@$want), once" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "$package@$want" >/dev/null 2>"$tmp/npm-pack.log"); then
  cat "$tmp/npm-pack.log" >&2
  echo "pushpool: the npm registry has no $package@$want: install Node $want yourself (e.g. \`nvm install $want\`) and run again" >&2
  exit 1
fi
mkdir -p "$root/.tools"
rm -rf "$root/.tools/node"
tar -xzf "$tmp"/"$package"-*.tgz -C "$tmp"
mv "$tmp/package" "$root/.tools/node"
echo "$root/.tools/node/bin"
