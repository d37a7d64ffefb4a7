# Set-up is part of every target: `make demo` and `make test` create .venv when it is missing or
# stale (the stamp names a hash of pyproject.toml, this Makefile and TORCH_SPEC), install torch
# first, then the package under a constraint that keeps that torch.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)-$(shell echo '$(TORCH_SPEC)' | sha1sum | cut -c1-8)
STAMP := $(VENV)/.installed-$(HASH)

DATA_DIR := $(abspath ../shared/data)
ifneq ($(wildcard $(DATA_DIR)),)
export MMKGREC_DATA ?= $(DATA_DIR)
endif

.PHONY: install browser demo serve test bench-core docs clean-venv

install: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed-*
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PY) -c "import torch; open('$(VENV)/torch-build.txt','w').write(torch.__version__)"
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[test,bench,serve]'
	@$(PY) -c "import torch; b=open('$(VENV)/torch-build.txt').read(); assert torch.__version__ == b, f'a dependency replaced torch {b} with {torch.__version__}'; print('torch', torch.__version__, 'kept')"
	touch $(STAMP)

# Debian's chromium for the page's browser test (tests/test_serve_page.py), installed where
# missing; where it cannot be (no root, no apt), that test skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	        --no-install-recommends chromium fonts-dejavu-core) >/dev/null || \
	      echo "browser: apt-get could not install chromium; the page's browser test will skip"; \
	    else echo "browser: chromium is missing and this user cannot apt-get install it; the page's browser test will skip"; fi; }

DEMO_OUT ?= runs/demo
demo: $(STAMP)
	$(VENV)/bin/mmkgrec demo --out $(DEMO_OUT)

# serve the demo's Multi-KG4Rec run (make demo first) and its page on http://127.0.0.1:8000/
serve: $(STAMP)
	@test -f $(DEMO_OUT)/MultiKG4Rec/run.json || { echo "serve: no $(DEMO_OUT)/MultiKG4Rec run; run make demo first"; exit 2; }
	$(VENV)/bin/mmkgrec serve $(DEMO_OUT)/MultiKG4Rec

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MMKGREC_CACHE=$$(mktemp -d) \
	  $(PY) -m pytest -q --durations=15 -p no:cacheprovider

bench-core: $(STAMP)
	$(PY) benchmarks/core.py

docs: $(STAMP)
	$(PY) benchmarks/report.py

clean-venv:
	rm -rf $(VENV)
