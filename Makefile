# Two entry points: `make book` (set up, then build the HTML book) and `make test` (set up,
# build the book, run every test). Both start from nothing and are quick to re-run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
SETUP_STAMP  := $(VENV)/.cnnlab-setup
ASSETS_STAMP := _vendor/.manifest.json
PYTEST_ARGS ?=

.PHONY: setup assets book test chromium lint clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): tools/web_assets.json tools/fetch_web_assets.py
	tools/ensure_command.sh npm npm
	$(PY) tools/fetch_web_assets.py

# -W -n --keep-going: a failing cell or any Sphinx warning fails the build (Jupyter Book 1.x
# would otherwise exit 0). Notebooks are executed, and cached in _build/.jupyter_cache.
book: setup assets
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

chromium:
	tools/ensure_command.sh chromium chromium

test: book chromium
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf _build
