#!/usr/bin/env bash
# Fetches the uPlot build the status page embeds (monitor/static/uplot/), with npm
# from the npm registry, and checks it against the registry's integrity hash
# (npm pack verifies the tarball's sha512). To upgrade: change VERSION, run
# this script, look at the page (go test ./monitor -run Browser keeps screenshots
# with GTSM_KEEP_SCREENSHOTS=dir), commit the four files.
set -euo pipefail
cd "$(dirname "$0")"
version=$(cat VERSION)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" .
echo "uPlot $version: $(wc -c < uPlot.iife.min.js) bytes of JS"
