# Two commands do everything on a fresh machine:  make book   and   make test
#   make book [PROFILE=tiny|smoke|full] [DEVICE=auto|cpu|cuda] [SEED=0] [ONLY=name,name] [DATA_DIR=path]
#   make test [PYTEST_ARGS="-k cache"]
#   make sweep ONLY=name[,name] [SEEDS=0-4] [PROFILE=..] [SET="k=v k2=v2"] [WORKERS=N | SCHEDULER=tcp://host:8786] [THREADS=1]
#   make clean        removes caches and build output (keeps .venv and vendored JS; `make distclean` removes them too)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PROFILE ?= smoke
DEVICE ?= auto
SEED ?= 0
ONLY ?=
DATA_DIR ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed
RUN_ARGS := --profile $(PROFILE) --device $(DEVICE) --seed $(SEED) $(if $(ONLY),--only $(ONLY)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

SEEDS ?= 0-4
SET ?=
WORKERS ?=
SCHEDULER ?=
THREADS ?= 1

.PHONY: install book notebooks test clean distclean sweep

# (Re)install when pyproject.toml changes. The machine's pip (and its constraints) are used as is.
$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Execute the notebooks (papermill), run the quick benchmark (for the performance page, < 1 min;
# written to bench_quick.json so a full run of `make bench` in bench.json is kept),
# then build the HTML book into _build/html. A failing notebook
# does not stop the others or the book build (its partial notebook shows the error), but `make book`
# still exits non-zero; bad input (exit 2) stops at once.
book: install
	rc=0; $(PYTHON) -m uqxai_lib.run $(RUN_ARGS) || rc=$$?; \
	if [ $$rc -eq 2 ]; then exit 2; fi; \
	$(PYTHON) -m uqxai_lib.bench --quick --device $(DEVICE) --out _build/results/bench_quick.json; \
	$(VENV)/bin/jupyter-book build . -W -n --keep-going; \
	if [ $$rc -ne 0 ]; then echo "make book: notebook(s) failed (see above); the book shows the partial notebooks" >&2; fi; \
	exit $$rc

# Only execute the notebooks (no book build).
notebooks: install
	$(PYTHON) -m uqxai_lib.run $(RUN_ARGS)

test: install
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Seeds x parameter sets of notebooks as Dask tasks (uqxai_lib.sweep): _build/sweeps/<nb>/<key>/, index.json.
sweep: install
	@test -n "$(ONLY)" || { echo "make sweep: pass ONLY=notebook[,notebook]" >&2; exit 2; }
	$(PYTHON) -m uqxai_lib.sweep --only $(ONLY) --seeds $(SEEDS) --profile $(PROFILE) \
	  --threads-per-task $(THREADS) $(foreach kv,$(SET),--set '$(kv)') \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
	  $(if $(filter auto,$(DEVICE)),,--device $(DEVICE)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

clean:
	rm -rf _build book/_executed .cache .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) book/_static/vendor *.egg-info

# --- book assets and browser (added by the book/widgets helper; see book/tools/) -----------------
# Offline JavaScript for the book (npm pack: widget html-manager, require.js, MathJax 3) into the
# git-ignored book/_static/vendor/, and Debian chromium + chromium-driver for the browser test.
.PHONY: assets browser
assets:
	bash book/tools/vendor_assets.sh book/_static/vendor

browser:
	bash book/tools/install_browser.sh

book: assets
test: assets browser

# --- benchmarks (added by the primer/bench helper): explanation engine vs baselines, side by side.
#   make bench [QUICK=1]   -> prints `ratio NAME VALUE` lines, writes _build/results/bench.json
.PHONY: bench
bench: install
	$(PYTHON) -m uqxai_lib.bench $(if $(QUICK),--quick)
