#!/usr/bin/env bash
# Create .venv/ in the repository root with the whole OpenMMLab stack and pvt_det.
# Idempotent: when nothing changed since the last successful run it returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
WHEELS="${PVT_DET_WHEELS:-$ROOT/../shared/wheels}"
PY="$VENV/bin/python"
pip_install() {
  # Hide pip's warnings about index locations this machine's pip.conf names but lacks.
  "$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
}

say() { printf '[setup] %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "[setup] error: $PYTHON not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# The stamp records the inputs of a finished install; a matching stamp plus a
# working import and the package-data links mean there is nothing to do.
STAMP="$VENV/.pvt_det_setup"
# setup.py is an input too: its build step links pvt_det/.mim/ (the package data) to the checkout.
want_stamp="$(cat "$0" setup.cfg pyproject.toml setup.py | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] &&
   "$PY" -c "import pvt_det, mmdet, mmseg; from mmcv.ops import nms, RoIAlign" 2>/dev/null &&
   [[ -e pvt_det/.mim/configs/configs ]]; then
  say "environment in .venv/ is up to date"
  exit 0
fi

[[ -x "$PY" ]] || { say "creating .venv/ with $PYTHON"; "$PYTHON" -m venv "$VENV"; }

say "torch 2.13.0 (CPU)"
pip_install torch==2.13.0
say "numpy, ninja, psutil, mmengine 0.10.7"
pip_install numpy ninja psutil mmengine==0.10.7

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  say "mmcv 2.1.0 with ops already installed"
elif compgen -G "$WHEELS/mmcv-2.1.0-*.whl" >/dev/null; then
  say "mmcv 2.1.0 from the wheel cache $WHEELS"
  pip_install --no-build-isolation --find-links "$WHEELS" mmcv==2.1.0
else
  say "no mmcv wheel in $WHEELS: building mmcv 2.1.0 with compiled ops from source."
  say "This takes 25-50 minutes on 2 cores."
  # mmcv's setup.py imports pkg_resources, which setuptools>=70 removed; pin only for this build.
  pip_install "setuptools<70"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" pip_install --no-build-isolation mmcv==2.1.0
  pip_install --upgrade setuptools
fi

say "mmdet 3.3.0, mmsegmentation 1.2.2, pycocotools"
pip_install mmdet==3.3.0 mmsegmentation==1.2.2 ftfy regex pycocotools
# COCO's panoptic API (mmdet's panoptic loading and PQ import `panopticapi`), which PyPI has only inside
# panopticapi-lite: the same panopticapi/evaluation.py and utils.py as cocodataset/panopticapi
# (docs/panoptic.md). --no-deps: its metadata pins numpy<2 and scikit-image, which that code does not use.
say "panopticapi (panopticapi-lite 0.2.0)"
pip_install --no-deps panopticapi-lite==0.2.0
say "pvt_det (editable) with test extras"
pip_install -e ".[tests]"

"$PY" -c "import pvt_det, mmdet, mmseg; from mmcv.ops import nms, RoIAlign"
echo "$want_stamp" > "$STAMP"
say "done: activate with 'source .venv/bin/activate'"
