# mmfapn developer entry points.  `make test` is what CI runs (.ci/run).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast clean-venv demo gpu-check model-zoo smoke coverage

## setup: create .venv and install the pinned stack (idempotent, cached)
setup:
	bash tools/setup_env.sh

## test: setup if needed, then the whole test suite (slow tests included)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## test-fast: the suite without the end-to-end tests marked slow
test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## smoke: setup if needed, then smoke-run one config on CPU: toy data in its
## format, 2 iterations from scratch, evaluation with its metrics
## (docs/user_guides/smoke_run.md).  make smoke CONFIG=configs/...py;
## more flags in SMOKE_ARGS (python tools/misc/smoke_run.py --help).
CONFIG     ?=
SMOKE_ARGS ?=
smoke: setup
	@test -n "$(CONFIG)" || { echo "make smoke: set CONFIG=path/to/config.py" >&2; exit 2; }
	$(PY) tools/misc/smoke_run.py $(CONFIG) $(SMOKE_ARGS)

## demo: setup if needed, then "does FaPN help?": FPN and FaPN with the
## same recipe over DEMO_SEEDS paired seeds on a synthetic boundary-heavy
## dataset (CPU), evaluated on a held-out test split; report with a 95%
## t-interval and a verdict in work_dirs/demo/.  Quick mode (one seed, no
## interval): make demo DEMO_SEEDS=1.  Other settings: DEMO_ITERS=..., or
## DEMO_FPN_CONFIG=... DEMO_FAPN_CONFIG=...; more flags in DEMO_ARGS
## (python tools/demo.py --help).
DEMO_SEEDS       ?= 3
DEMO_ITERS       ?= 300
DEMO_FPN_CONFIG  ?= configs/seg/demo/sem-fpn_r18_fpn_toycity-demo.py
DEMO_FAPN_CONFIG ?= configs/seg/demo/sem-fpn_r18_fapn_toycity-demo.py
DEMO_ARGS        ?=
demo: setup
	$(PY) tools/demo.py --seeds $(DEMO_SEEDS) --iters $(DEMO_ITERS) \
		--fpn-config $(DEMO_FPN_CONFIG) --fapn-config $(DEMO_FAPN_CONFIG) \
		$(DEMO_ARGS)

## clean-venv: remove .venv (the cached mmcv wheel in ~/.cache/mmfapn stays)
clean-venv:
	rm -rf $(VENV)

## gpu-check: on a machine with one CUDA GPU (docs/gpu_check.md): set-up
## (mmcv's CUDA ops for this GPU only; offline with MMFAPN_WHEELHOUSE=DIR),
## CUDA tests, DCN and model benchmarks, a 50-iteration AMP training run,
## in about 10 minutes; report in work_dirs/gpu_check/.  More flags in
## GPU_CHECK_ARGS (python3 tools/gpu_check.py --help); on a CPU machine
## GPU_CHECK_ARGS=--dry-run checks the wiring only.
GPU_PYTHON     ?= python3
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_PYTHON) tools/gpu_check.py $(GPU_CHECK_ARGS)

## model-zoo: regenerate docs/model_zoo.md from model-index.yml and the
## configs' metafile.yml files (tests/docs/test_model_zoo.py fails when stale)
model-zoo:
	$(PY) tools/misc/gen_model_zoo.py

## coverage: does FaPN work wherever the installed mmdet/mmseg use FPN?  Every
## stock config with an FPN gets FaPN (same arguments), builds without
## weights, one loss + one predict on CPU; resumes COVERAGE_OUT, writes
## docs/coverage.md.  COVERAGE_JOBS=N worker processes; more flags in
## COVERAGE_ARGS (python tools/analysis/fapn_coverage.py --help).
COVERAGE_OUT  ?= work_dirs/coverage/records.jsonl
COVERAGE_JOBS ?= 1
COVERAGE_ARGS ?=
coverage: setup
	$(PY) tools/analysis/fapn_coverage.py --out $(COVERAGE_OUT) \
		--jobs $(COVERAGE_JOBS) --markdown docs/coverage.md $(COVERAGE_ARGS)
