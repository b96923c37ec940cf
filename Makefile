# Two entry points: `make book` (set up, then build the HTML book) and `make test` (set up,
# build the book, run every test). Both start from nothing and are quick to re-run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
SETUP_STAMP  := $(VENV)/.cnnlab-setup
ASSETS_STAMP := _vendor/.manifest.json
PYTEST_ARGS ?=

.PHONY: setup assets book notebooks test portability chromium lint clean

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

# The built site in headless Chromium at 390x844 and 1366x900 (console, layout, toggles, alt
# text, figure text size, page and site weight); screenshots go to _build/screenshots/.
.PHONY: site-test
site-test: book chromium
	$(PY) -m pytest tests/test_site.py tests/test_book_browser.py tests/test_book_pages.py $(PYTEST_ARGS)

# Re-execute every chapter and store its outputs (the book shows the stored outputs).
notebooks: setup
	$(PY) tools/execute_notebook.py book/*.ipynb

# A second numeric setup: torch without SIMD kernels, another OpenBLAS kernel, one thread.
# Sandybridge (AVX without FMA) differs from every kernel a current x86-64 CPU picks by itself
# (SkylakeX, Haswell, Zen), and from the Haswell kernel some machines here set in the environment.
# Every notebook must reproduce its stored outputs here too (tests/test_numeric_config.py checks
# that the setup really took effect).
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default OPENBLAS_CORETYPE=Sandybridge OMP_NUM_THREADS=1 \
	OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 CNNLAB_NUMERIC_CONFIG=portable

portability: setup
	$(PORTABLE_ENV) $(PY) -m pytest tests/test_numeric_config.py book exercises

# Lint first (ruff: pyflakes, pycodestyle, imports, bugbear, pyupgrade, and D301: a docstring
# with a backslash must be a raw string), so a style or escape error fails before the slow part.
test: lint book chromium
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory portability

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf _build
