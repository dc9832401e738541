# `make demo`: install and run the main job on a built-in tiny default.
# `make test`: install (with the test-only torch CPU build) and run the test suite.
# `make original-env`: the separate environment of benchmarks/original_glm4voice_speed.py.
# `make toy`: rebuild the built-in trained toy (corpus, the 4 stages through train.py, figures).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test toy original-env

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

TOY_STAGES := stage1_alignment stage2_single_mctp stage3_multi_mctp stage4_sft
toy: install
	$(PY) -m vita_jax.data.toy_corpus --out runs/toy/data
	rm -rf $(addprefix runs/toy/,$(TOY_STAGES))
	for stage in $(TOY_STAGES); do $(PY) train.py --config $$stage:toy || exit 1; done
	rm -rf vita_jax/toy/checkpoint && cp -r runs/toy/stage4_sft/final vita_jax/toy/checkpoint
	$(PY) benchmarks/mctp_toy.py --json vita_jax/toy/figures.json --png docs/toy-mctp.png

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# The original GLM-4-Voice decoder/tokenizer building blocks, for benchmarks/original_glm4voice_speed.py.
# cosyvoice-minicpmo carries the upstream CosyVoice and Matcha sources; its declared dependencies
# (GPU runtimes among them) are not needed for these modules, hence --no-deps.
.venv-original/.installed: benchmarks/original-requirements.txt
	python3 -m venv .venv-original
	.venv-original/bin/python -m pip install -q -r benchmarks/original-requirements.txt
	.venv-original/bin/python -m pip install -q --no-deps cosyvoice-minicpmo==0.1.0
	touch $@

original-env: .venv-original/.installed
