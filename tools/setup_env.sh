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
#
# GPU machines (docs/gpu_check.md; used by `make gpu-check`):
# - a base python with a CUDA torch is reused (--system-site-packages) and
#   mmcv's CUDA ops are built for the local GPU architecture only
#   (TORCH_CUDA_ARCH_LIST from torch.cuda.get_device_capability unless set;
#   MAX_JOBS = cores; CUDA_HOME from nvcc unless set); mmcv 2.1.0's source
#   includes <THC/THCAtomics.cuh>, which newer torch no longer ships: the
#   build then uses a copy of the source with <ATen/cuda/Atomic.cuh>.
# - MMFAPN_WHEELHOUSE=DIR installs offline from DIR only (pip --no-index
#   --find-links DIR).  With a reused CUDA torch it installs just the
#   pinned packages such a machine lacks (tools/gpu_check_requirements.txt,
#   --no-deps; the image's numpy, opencv, scipy... are used as they are).
#   A prebuilt mmcv wheel in DIR/<cache dir name>/ (whole, or split into
#   *.whl.part-* files) is used instead of building.
# - MMFAPN_MMCV_BUILD_TIMEOUT=SECONDS stops the mmcv build after that long;
#   with MMFAPN_MMCV_FALLBACK=no-ops a failed or stopped build installs mmcv
#   without compiled ops (mmfapn then runs its PyTorch DCN path; mmdet and
#   mmseg models need the ops) and records why in $VENV/.mmcv-no-ops.
#
# torchvision (only for `torchvision://` pretrained weights of stock
# configs): the release matching the installed torch (torch 2.N ->
# torchvision 0.(N+15)) is tried once per environment; it is kept only if
# its compiled ops load (`torchvision.ops.nms`), else removed again and
# the script says so: PyPI's Linux torchvision wheels are built against
# CUDA torch and do not import with the CPU torch (a local checkpoint or
# `init_cfg=None` then replaces torchvision:// weights).
#
# --check: re-verify an installed environment without installing:
# the interpreter of VENV=DIR if given, else of the active virtual
# environment ($VIRTUAL_ENV), else $PYTHON (python3) on PATH; it prints
# which one it checked.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_GIVEN="${VENV:-}"  # --check: set only when the caller names one
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
CACHE="${MMFAPN_WHEEL_CACHE:-$HOME/.cache/mmfapn/wheels}"
MMCV_VERSION=2.1.0
TORCH_VERSION=2.13.0
WHEELHOUSE="${MMFAPN_WHEELHOUSE:-}"
GPU_REQUIREMENTS="$ROOT/tools/gpu_check_requirements.txt"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

check_ops() {
  local err
  if ! err="$("$PY" -c 'import mmcv' 2>&1)"; then
    die "mmcv is not installed for $PY (${err##*$'\n'}): run 'make setup', or name the environment to check with VENV=DIR"
  fi
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

# torchvision: "VERSION (ops ok)" if it imports and its ops run, else why not
torchvision_status() {
  "$PY" - <<'PY' 2>/dev/null || echo "cannot be checked"
import importlib.util
if importlib.util.find_spec('torchvision') is None:
    print('not installed')
else:
    try:
        import torch, torchvision
        torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
        print(f'{torchvision.__version__} (ops ok)')
    except Exception as e:
        print(f'broken: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}')
PY
}

# Try the torchvision release that matches torch; keep it only if its ops
# load.  A release that does not load is recorded (tried once per torch
# version: the cached path stays fast).  Never fails the set-up.
install_torchvision() {
  local torch_v tv_spec status marker="$VENV/.torchvision-unavailable"
  status="$(torchvision_status)"
  if [[ "$status" == *"(ops ok)" ]]; then say "torchvision $status"; return 0; fi
  torch_v="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  if [[ -f "$marker" && "$(head -n1 "$marker")" == "torch $torch_v" ]]; then
    say "torchvision: none works with torch $torch_v here ($(tail -n1 "$marker")); torchvision:// pretrained weights cannot be loaded (train from scratch with init_cfg=None, or give a local checkpoint)"
    return 0
  fi
  tv_spec="$("$PY" -c 'import torch; v = torch.__version__.split("+")[0].split("."); print(f"torchvision==0.{int(v[1]) + 15}.*" if v[0] == "2" else "")')"
  local why=""
  if [[ -z "$tv_spec" ]]; then
    why="no known torchvision release for torch $torch_v"
  elif ! "${PIP[@]}" --no-deps "$tv_spec" >/dev/null 2>&1; then
    # not recorded: the index may be unreachable only this time
    say "torchvision: not installed: $tv_spec could not be installed from the configured package index; torchvision:// pretrained weights cannot be loaded (train from scratch with init_cfg=None, or give a local checkpoint)"
    return 0
  else
    status="$(torchvision_status)"
    if [[ "$status" == *"(ops ok)" ]]; then say "torchvision $status"; rm -f "$marker"; return 0; fi
    why="$tv_spec does not load with torch $("$PY" -c 'import torch; print(torch.__version__)') ($status)"
    "$PY" -m pip uninstall -q -y torchvision >/dev/null 2>&1 || true
  fi
  printf 'torch %s\n%s\n' "$torch_v" "$why" > "$marker"
  say "torchvision: not installed: $why; torchvision:// pretrained weights cannot be loaded (train from scratch with init_cfg=None, or give a local checkpoint)"
}

inputs_hash() {
  { cat requirements.txt setup.cfg pyproject.toml tools/setup_env.sh 2>/dev/null
    # an offline (wheelhouse) install is another environment
    if [[ -n "$WHEELHOUSE" ]]; then echo "wheelhouse"; cat "$GPU_REQUIREMENTS"; fi
  } | sha256sum | cut -c1-16
}
STAMP="$VENV/.mmfapn-setup-$(inputs_hash)"
if [[ "${1:-}" == "--check" ]]; then  # verify an existing environment only
  if [[ -n "$VENV_GIVEN" ]]; then
    PY="$VENV_GIVEN/bin/python"; WHICH="VENV=$VENV_GIVEN"
  elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PY="$VIRTUAL_ENV/bin/python"; WHICH="the active virtual environment, VIRTUAL_ENV=$VIRTUAL_ENV"
  else
    PY="$(command -v "$PYTHON" || echo "$PYTHON")"
    WHICH="$PYTHON on PATH; no virtual environment is active, VENV=$ROOT/.venv checks the repository's"
  fi
  [[ -x "$PY" ]] || die "--check: no python at $PY ($WHICH)"
  say "checking $PY ($WHICH)"
  WHEEL_DIR="$CACHE"
  check_ops; check_stack
  say "torchvision: $(torchvision_status)"
  exit 0
fi
if [[ -f "$STAMP" ]]; then
  say "environment up to date ($VENV)"
  exit 0
fi
if [[ -n "$WHEELHOUSE" ]]; then
  [[ -d "$WHEELHOUSE" ]] || die "MMFAPN_WHEELHOUSE=$WHEELHOUSE is not a directory"
  WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
fi

# --- virtual environment -----------------------------------------------------
# On a CUDA machine whose base python already has a CUDA torch, reuse it
# (system site packages) instead of installing the CPU wheel.
if [[ ! -x "$VENV/bin/python" ]]; then
  if "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    say "reusing the CUDA torch of $PYTHON"
    # without ensurepip, pip comes from $PYTHON's packages (linked below)
    "$PYTHON" -m venv --system-site-packages "$VENV" || \
      "$PYTHON" -m venv --system-site-packages --without-pip --clear "$VENV"
    # A $PYTHON that is itself a venv (e.g. /opt/torch/.venv/bin/python3):
    # --system-site-packages reaches its base interpreter's packages, not
    # that venv's, where torch is.  Add them after .venv's own.
    if "$PYTHON" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
      "$PYTHON" -c 'import site; print("\n".join(f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()))' \
        > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_mmfapn_base_python.pth"
    fi
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
INDEX=()  # pip's package sources: the configured index, or the wheelhouse
if [[ -n "$WHEELHOUSE" ]]; then
  INDEX=(--no-index --find-links "$WHEELHOUSE")
  say "offline install from the wheelhouse $WHEELHOUSE"
fi
PIP+=("${INDEX[@]}")

if ! "$PY" -c 'import torch' 2>/dev/null; then
  say "installing torch==$TORCH_VERSION"
  "${PIP[@]}" "torch==$TORCH_VERSION"
fi
CUDA_TORCH="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')"
# Lean offline install on a CUDA image: only what it lacks, no resolver.
LEAN=0
if [[ -n "$WHEELHOUSE" && "$CUDA_TORCH" == 1 ]]; then LEAN=1; fi
if [[ "$LEAN" == 1 ]]; then
  say "CUDA torch $("$PY" -c 'import torch; print(torch.__version__)'): installing $(basename "$GPU_REQUIREMENTS") (--no-deps)"
  "${PIP[@]}" --no-deps -r "$GPU_REQUIREMENTS"
else
  "${PIP[@]}" "setuptools>=77,<82" wheel ninja "numpy>=1.26,<2"
fi

# --- CUDA build settings: this machine's GPU architecture only --------------
if [[ "$CUDA_TORCH" == 1 ]]; then
  if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    TORCH_CUDA_ARCH_LIST="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')"
    export TORCH_CUDA_ARCH_LIST
  fi
  if [[ -z "${CUDA_HOME:-}" ]] && command -v nvcc >/dev/null; then
    # nvcc may be a wrapper script: ask it where its toolkit is
    echo > "$VENV/.nvcc-probe.cu"
    top="$(nvcc -v --dryrun -c "$VENV/.nvcc-probe.cu" -o "$VENV/.nvcc-probe.o" 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)"
    rm -f "$VENV/.nvcc-probe.cu"
    if [[ -n "$top" && -f "$top/include/cuda_runtime_api.h" ]]; then
      CUDA_HOME="$(cd "$top" && pwd -P)"; export CUDA_HOME
    fi
  fi
  say "CUDA build: TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST CUDA_HOME=${CUDA_HOME:-?} MAX_JOBS=${MAX_JOBS:-$(nproc)}"
fi

# --- mmcv with compiled ops (built once per torch/python, then cached) -------
TAG="$("$PY" - <<'PY'
import os, sys, torch
cu = torch.version.cuda or 'cpu'
tag = f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split('+')[0]}-{cu}"
if torch.cuda.is_available():  # a CUDA build holds code for these archs only
    tag += '-sm' + os.environ['TORCH_CUDA_ARCH_LIST'].replace('.', '').replace(';', '_').replace(' ', '_')
print(tag)
PY
)"
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-$TAG"
rm -f "$VENV/.mmcv-no-ops"
has_ops() { "$PY" -c 'from mmcv.ops import ModulatedDeformConv2d; import mmcv._ext' 2>/dev/null; }

# the mmcv source to build: the sdist, patched where torch lacks THC
mmcv_source() {
  local out="$1"
  if [[ "$CUDA_TORCH" != 1 ]] || "$PY" -c "import os, sys, torch; sys.exit(not os.path.isfile(os.path.join(os.path.dirname(torch.__file__), 'include', 'THC', 'THCAtomics.cuh')))"; then
    echo "mmcv==$MMCV_VERSION"; return
  fi
  # (errexit does not reach into $(...): every step checked)
  mkdir -p "$out" || return 1
  "$PY" -m pip download -q --disable-pip-version-check "${INDEX[@]}" --no-deps \
    --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$out" >&2 || return 1
  tar xzf "$out/mmcv-$MMCV_VERSION.tar.gz" -C "$out" >&2 || return 1
  grep -rl 'THC/THCAtomics.cuh' "$out/mmcv-$MMCV_VERSION/mmcv/ops/csrc" \
    | xargs sed -i 's#<THC/THCAtomics.cuh>#<ATen/cuda/Atomic.cuh>#' || return 1
  say "torch has no THC/THCAtomics.cuh: building a copy of mmcv's source with <ATen/cuda/Atomic.cuh>" >&2
  echo "$out/mmcv-$MMCV_VERSION"
}

no_ops_fallback() {  # $1: why the build did not give ops
  say "WARNING: $1; MMFAPN_MMCV_FALLBACK=no-ops: installing mmcv $MMCV_VERSION without compiled ops"
  rm -rf "$WHEEL_DIR.lite"; mkdir -p "$WHEEL_DIR.lite"
  MMCV_WITH_OPS=0 "$PY" -m pip wheel -q --disable-pip-version-check "${INDEX[@]}" \
    --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$WHEEL_DIR.lite"
  "${PIP[@]}" --no-deps "$WHEEL_DIR.lite"/mmcv*.whl
  echo "$1" > "$VENV/.mmcv-no-ops"
}

if ! "$PY" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null || ! has_ops; then
  CARRIED="$WHEELHOUSE/$(basename "$WHEEL_DIR")"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1 && [[ -n "$WHEELHOUSE" && -d "$CARRIED" ]]; then
    # a wheel built earlier on a machine like this one, carried along
    mkdir -p "$WHEEL_DIR.tmp"
    if ls "$CARRIED"/mmcv-*.whl >/dev/null 2>&1; then
      cp "$CARRIED"/mmcv-*.whl "$WHEEL_DIR.tmp/"
    else
      for first in "$CARRIED"/*.whl.part-aa; do
        [[ -f "$first" ]] || continue
        cat "${first%.part-aa}".part-* > "$WHEEL_DIR.tmp/$(basename "${first%.part-aa}")"
      done
    fi
    if ls "$WHEEL_DIR.tmp"/mmcv-*.whl >/dev/null 2>&1; then
      rm -rf "$WHEEL_DIR"; mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
      say "using the mmcv wheel carried in $CARRIED"
    fi
  fi
  BUILD_ERROR=""
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV_VERSION with ops from source (~10 min on 2 cores); cache: $WHEEL_DIR"
    rm -rf "$WHEEL_DIR.tmp"; mkdir -p "$WHEEL_DIR.tmp"
    TIMEOUT=()
    if [[ -n "${MMFAPN_MMCV_BUILD_TIMEOUT:-}" ]]; then
      TIMEOUT=(timeout --kill-after=15 "$MMFAPN_MMCV_BUILD_TIMEOUT")
    fi
    # --no-build-isolation: an isolated build sees no torch and silently
    # produces an mmcv without ops.  FORCE_CUDA only when torch has CUDA.
    build_start=$SECONDS
    if ! SRC="$(mmcv_source "$WHEEL_DIR.tmp/src")"; then
      BUILD_ERROR="could not prepare mmcv $MMCV_VERSION's source (see above)"
      [[ "${MMFAPN_MMCV_FALLBACK:-}" == no-ops ]] || die "$BUILD_ERROR"
    elif FORCE_CUDA="$CUDA_TORCH" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${TIMEOUT[@]}" "$PY" -m pip wheel -q --disable-pip-version-check "${INDEX[@]}" \
        --no-build-isolation --no-deps "$SRC" -w "$WHEEL_DIR.tmp"; then
      rm -rf "$WHEEL_DIR.tmp/src"
      rm -rf "$WHEEL_DIR"; mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
      say "built mmcv in $(( SECONDS - build_start )) s"
    else
      rc=$?
      if [[ "$rc" == 124 || "$rc" == 137 ]]; then
        BUILD_ERROR="mmcv build stopped after MMFAPN_MMCV_BUILD_TIMEOUT=${MMFAPN_MMCV_BUILD_TIMEOUT:-} s"
      else
        BUILD_ERROR="mmcv build failed (exit status $rc, after $(( SECONDS - build_start )) s)"
      fi
      [[ "${MMFAPN_MMCV_FALLBACK:-}" == no-ops ]] || die "$BUILD_ERROR"
    fi
  else
    say "using cached mmcv wheel from $WHEEL_DIR"
  fi
  if [[ -n "$BUILD_ERROR" ]]; then
    no_ops_fallback "$BUILD_ERROR"
  else
    MMCV_DEPS=()  # the lean install has its own pinned list
    [[ "$LEAN" == 1 ]] && MMCV_DEPS=(--no-deps)
    "${PIP[@]}" "${MMCV_DEPS[@]}" "$WHEEL_DIR"/mmcv-*.whl
  fi
fi
if [[ -f "$VENV/.mmcv-no-ops" ]]; then
  :  # recorded above; mmdet/mmseg checks are skipped below
elif [[ "${MMFAPN_MMCV_FALLBACK:-}" == no-ops && "$CUDA_TORCH" == 1 ]] && \
     ! "$PY" -c 'import torch; from mmcv.ops import modulated_deform_conv2d as f; z = torch.zeros(1, 1, 3, 3, device="cuda"); f(z, torch.zeros(1, 18, 3, 3, device="cuda"), torch.ones(1, 9, 3, 3, device="cuda"), torch.zeros(1, 1, 3, 3, device="cuda"), None, 1, 1, 1, 1, 1)' 2>/dev/null; then
  no_ops_fallback "mmcv's ops have no CUDA kernels"
else
  check_ops
fi

# --- the rest of the pinned stack, then mmfapn itself ------------------------
# openmim goes in with --no-deps (see requirements.txt).
if [[ "$LEAN" != 1 ]]; then
  grep -v '^openmim' requirements.txt > "$VENV/.requirements-no-mim.txt"
  "${PIP[@]}" -r "$VENV/.requirements-no-mim.txt"
  "${PIP[@]}" --no-deps "$(grep '^openmim' requirements.txt)"
fi
"${PIP[@]}" --no-build-isolation --no-deps -e .

rm -f "$VENV"/.mmfapn-setup-*
if [[ -f "$VENV/.mmcv-no-ops" ]]; then
  # no stamp: the next run tries the build again
  "$PY" -c 'import mmcv, mmengine, mmfapn, torch; print(f"[setup] torch {torch.__version__}, mmcv {mmcv.__version__} (NO ops), mmengine {mmengine.__version__}")' \
    || die "post-install check failed (see the traceback above)"
  say "done, without mmcv ops: $(cat "$VENV/.mmcv-no-ops")"
  exit 0
fi
check_stack
install_torchvision
touch "$STAMP"
say "done"
