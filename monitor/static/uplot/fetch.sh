#!/usr/bin/env bash
# Fetches the uPlot build the status page embeds (monitor/static/uplot/) from
# the npm registry with npm pack. To upgrade: change VERSION, run this script,
# run the browser tests and look at the page
#   GTSM_KEEP_SCREENSHOTS=/tmp/shots go test -run 'Browser|Options' ./monitor
# then commit VERSION, uPlot.iife.min.js, uPlot.min.css and LICENSE.
set -euo pipefail
cd "$(dirname "$0")"
version=$(cat VERSION)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" .
echo "uPlot $version: $(wc -c < uPlot.iife.min.js) bytes of JS"
