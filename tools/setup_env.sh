#!/usr/bin/env bash
# Create .venv in the repository and install the pinned stack and mmcf.
#
# First run on a machine: about 30 minutes, nearly all of it building mmcv 2.1.0
# from source (PyPI has no wheel of it for torch 2.13); pip caches the wheel, so
# a new .venv on the same machine takes a couple of minutes. A second run with
# nothing changed returns in seconds (a stamp records the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp_inputs() { cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.mmcf-setup"
WANT=$(stamp_inputs)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ] \
   && [ -L mmcf/.mim/configs ] && [ -L mmcf/.mim/model-index.yml ] \
   && [ -e "$VENV/bin/mim" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 9), sys.version' \
    || { echo "[setup] Python >= 3.9 needed (3.11 tested)" >&2; exit 1; }
  echo "[setup] creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
rm -f "$STAMP"

echo "[setup] torch, torchvision, build tools"
$PIP install -q --upgrade pip
$PIP install -q -r requirements/build.txt ninja

MMCV_VERSION=$($PIP show mmcv 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$MMCV_VERSION" != "2.1.0" ]; then
  echo "[setup] mmcv 2.1.0 from source with MAX_JOBS=$MAX_JOBS (about 25 minutes on 2 cores the first time; then pip's wheel cache)"
  $PIP install --no-build-isolation mmcv==2.1.0
fi

echo "[setup] OpenMMLab libraries, test tools, mmcf (editable)"
$PIP install -q -r requirements/runtime.txt -r requirements/tests.txt
$PIP install -q --no-build-isolation --no-deps -e .
# mim (0.3.x) finds a package's tools/ and configs/ at <dist location>/mmcf/.mim,
# the layout of an old `setup.py develop`; a PEP 660 editable install puts the
# dist-info in site-packages with no mmcf folder beside it. A link to the
# repository's package gives mim that folder; imports resolve to the same files.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$PWD/mmcf" "$SITE/mmcf"

echo "[setup] pip check"
$PIP check
"$VENV/bin/python" -c 'import mmcf, mmcv, mmdet, mmseg, mmpretrain, torch, torchvision; from mmcv.ops import nms; print("[setup] ok: torch", torch.__version__, "mmcv", mmcv.__version__, "mmcf", mmcf.__version__)'
echo "$WANT" > "$STAMP"
