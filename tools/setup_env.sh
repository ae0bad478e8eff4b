#!/usr/bin/env bash
# One-command environment for mmfapn (called by `make setup`).
#
# Creates .venv at the repo root and installs the pinned OpenMMLab stack:
# torch 2.13.0, setuptools<82, mmcv 2.1.0 built from source WITH its compiled
# ops, mmengine/mmdet/mmseg, mim, pycocotools, panopticapi, then mmfapn itself
# in editable mode.  Idempotent: a stamp file records the inputs of the last
# successful run, so a second call returns at once.  The built mmcv wheel is
# cached outside the repo (MMFAPN_WHEEL_CACHE, default ~/.cache/mmfapn) so a
# fresh clone on the same machine does not rebuild it (~10 min on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
CACHE="${MMFAPN_WHEEL_CACHE:-$HOME/.cache/mmfapn/wheels}"
MMCV_VERSION=2.1.0
TORCH_VERSION=2.13.0

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

check_ops() {
  local err
  if ! err="$("$PY" -c 'from mmcv.ops import ModulatedDeformConv2d; import mmcv._ext' 2>&1)"; then
    die "mmcv is installed but its compiled ops are missing (${err##*$'\n'}). \
Delete $WHEEL_DIR and rerun 'make setup'; the build must use --no-build-isolation with torch installed."
  fi
}

check_stack() {
  "$PY" - <<'PY' || die "post-install check failed (see the traceback above)"
import mmcv, mmengine, mmdet, mmseg, torch
from mmcv.ops import ModulatedDeformConv2d  # noqa: F401  (compiled ops)
import mmfapn  # noqa: F401
print(f"[setup] torch {torch.__version__}, mmcv {mmcv.__version__} (ops ok), "
      f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}")
PY
}

inputs_hash() {
  cat requirements.txt setup.cfg pyproject.toml tools/setup_env.sh 2>/dev/null | sha256sum | cut -c1-16
}
STAMP="$VENV/.mmfapn-setup-$(inputs_hash)"
if [[ "${1:-}" == "--check" ]]; then  # verify an existing environment only
  PY="$VENV/bin/python"; WHEEL_DIR="$CACHE"
  check_ops; check_stack; exit 0
fi
if [[ -f "$STAMP" ]]; then
  say "environment up to date ($VENV)"
  exit 0
fi

# --- virtual environment -----------------------------------------------------
# On a CUDA machine whose base python already has a CUDA torch, reuse it
# (system site packages) instead of installing the CPU wheel.
if [[ ! -x "$VENV/bin/python" ]]; then
  if "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    say "reusing the CUDA torch of $PYTHON"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if ! "$PY" -c 'import torch' 2>/dev/null; then
  say "installing torch==$TORCH_VERSION"
  "${PIP[@]}" "torch==$TORCH_VERSION"
fi
"${PIP[@]}" "setuptools>=77,<82" wheel ninja "numpy>=1.26,<2"

# --- mmcv with compiled ops (built once per torch/python, then cached) -------
TAG="$("$PY" - <<'PY'
import sys, torch
cu = torch.version.cuda or 'cpu'
print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split('+')[0]}-{cu}")
PY
)"
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-$TAG"
has_ops() { "$PY" -c 'from mmcv.ops import ModulatedDeformConv2d; import mmcv._ext' 2>/dev/null; }
if ! "$PY" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null || ! has_ops; then
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV_VERSION with ops from source (~10 min on 2 cores); cache: $WHEEL_DIR"
    mkdir -p "$WHEEL_DIR.tmp"
    # --no-build-isolation: an isolated build sees no torch and silently
    # produces an mmcv without ops.  FORCE_CUDA only when torch has CUDA.
    FORCE_CUDA="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" \
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$WHEEL_DIR.tmp"
    rm -rf "$WHEEL_DIR"; mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
  else
    say "using cached mmcv wheel from $WHEEL_DIR"
  fi
  "${PIP[@]}" "$WHEEL_DIR"/mmcv-*.whl
fi
check_ops

# --- the rest of the pinned stack, then mmfapn itself ------------------------
# openmim goes in with --no-deps (see requirements.txt).
grep -v '^openmim' requirements.txt > "$VENV/.requirements-no-mim.txt"
"${PIP[@]}" -r "$VENV/.requirements-no-mim.txt"
"${PIP[@]}" --no-deps "$(grep '^openmim' requirements.txt)"
"${PIP[@]}" --no-build-isolation --no-deps -e .

check_stack
rm -f "$VENV"/.mmfapn-setup-*
touch "$STAMP"
say "done"
