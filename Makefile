# mmfapn developer entry points.  `make test` is what CI runs (.ci/run).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast clean-venv

## setup: create .venv and install the pinned stack (idempotent, cached)
setup:
	bash tools/setup_env.sh

## test: setup if needed, then the whole test suite (slow tests included)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## test-fast: the suite without the end-to-end tests marked slow
test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## clean-venv: remove .venv (the cached mmcv wheel in ~/.cache/mmfapn stays)
clean-venv:
	rm -rf $(VENV)
