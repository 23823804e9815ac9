# Two commands do everything on a fresh machine:  make book   and   make test
SHELL := /bin/bash
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
PROFILE ?= smoke
STAMP := $(VENV)/.installed

.PHONY: install book test clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

book: install
	$(PYTHON) -m uqxai_lib.run --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: install
	$(PYTHON) -m pytest

clean:
	rm -rf _build book/_executed .cache

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
