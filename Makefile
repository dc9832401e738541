# `make demo`: install and run the main job on a built-in tiny default.
# `make test`: install (with the test-only torch CPU build) and run the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: this resolves to the local CPU build and never pulls CUDA.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -r requirements-test.txt
	# the package itself, editable, without touching the pinned set above
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) infer.py --demo

test: install
	$(PY) -m pytest -q tests
