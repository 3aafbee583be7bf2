#!/usr/bin/env bash
# Reproduce the console's vendored JavaScript (api/console/vendor/) from the npm registry:
# the minified files the console loads and each package's licence, at pinned versions.
# The console never loads anything from a CDN; these files are committed.
#   scripts/vendor_js.sh          fetch with `npm pack` (needs npm and the registry) and copy
set -euo pipefail
cd "$(dirname "$0")/.."

ECHARTS=echarts@6.1.0                  # Apache-2.0 (LICENSE + NOTICE)
LEAFLET=leaflet@1.9.4                  # BSD-2-Clause
CLUSTER=leaflet.markercluster@1.5.3    # MIT

DEST=api/console/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch NAME@VERSION → unpacked into $WORK/NAME
  local spec=$1 name=${1%@*}
  (cd "$WORK" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$WORK/$name"
  tar xzf "$WORK/${name//\//-}-${spec##*@}.tgz" -C "$WORK/$name"
}

fetch "$ECHARTS"
fetch "$LEAFLET"
fetch "$CLUSTER"

rm -rf "$DEST"
mkdir -p "$DEST/echarts" "$DEST/leaflet" "$DEST/leaflet.markercluster"
# ECharts: the "common" bundle (line, bar, pie and the usual components) is all the statistics page draws
cp "$WORK/echarts/package/dist/echarts.common.min.js" "$DEST/echarts/"
cp "$WORK/echarts/package/LICENSE" "$WORK/echarts/package/NOTICE" "$DEST/echarts/"
# Leaflet: the script and its stylesheet (markers are drawn as CSS boxes, so no marker images)
cp "$WORK/leaflet/package/dist/leaflet.js" "$WORK/leaflet/package/dist/leaflet.css" "$WORK/leaflet/package/LICENSE" "$DEST/leaflet/"
cp "$WORK/leaflet.markercluster/package/dist/leaflet.markercluster.js" \
   "$WORK/leaflet.markercluster/package/dist/MarkerCluster.css" \
   "$WORK/leaflet.markercluster/package/dist/MarkerCluster.Default.css" \
   "$WORK/leaflet.markercluster/package/MIT-LICENCE.txt" "$DEST/leaflet.markercluster/"
# the source maps are not shipped: drop the comments that point at them
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/leaflet/leaflet.js" "$DEST/leaflet.markercluster/leaflet.markercluster.js"
{
  echo "Vendored by scripts/vendor_js.sh from the npm registry; do not edit."
  echo "$ECHARTS  echarts/ (Apache-2.0, see LICENSE and NOTICE)"
  echo "$LEAFLET  leaflet/ (BSD-2-Clause, see LICENSE)"
  echo "$CLUSTER  leaflet.markercluster/ (MIT, see MIT-LICENCE.txt)"
} >"$DEST/VERSIONS.txt"
(cd "$DEST" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum >SHA256SUMS)
echo "vendored into $DEST:"
cat "$DEST/VERSIONS.txt"
