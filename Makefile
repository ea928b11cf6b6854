# homesearch: the two commands are `make run` and `make test` (see README.md).
#
# The environment is a local .venv with the pinned dependencies of requirements.lock
# and the project installed editable. Setup runs once: a stamp file records it and
# is redone only when requirements.lock or pyproject.toml change.

PYTHON  ?= python3.11
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.homesearch-installed
PYTEST_ARGS ?=
UP_ARGS ?=

.PHONY: help env models run up test protos demo-data lock clean-env

help:
	@echo "make run      set up .venv, prepare models, start the stack with the demo catalog and example searches;"
	@echo "              ends by printing the web console's URL (http://127.0.0.1:8080)"
	@echo "make test     set up .venv and run the whole test suite"
	@echo "make protos   regenerate the Python stubs from protos/"
	@echo "make lock     rewrite requirements.lock from the current .venv"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.2"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

env: $(STAMP)

models: env
	$(VENV)/bin/homesearch prepare-models

run: env models
	$(VENV)/bin/homesearch up --index data/demo/catalog.jsonl --demo --skip-prepare $(UP_ARGS)

up: run

test: env models
	$(PY) -m pytest $(PYTEST_ARGS)

protos: env
	PYTHON=$(PY) scripts/gen_protos.sh

demo-data: env
	$(PY) data/demo/make_demo.py

lock:
	$(PY) -m pip freeze --all --exclude-editable | grep -v -i -E '^(homesearch|pip)==' > requirements.lock.tmp
	@{ echo "# Pinned dependencies (pip freeze of a working .venv; 'make lock' rewrites it)."; \
	   echo "# torch==2.13.0 is the CPU build: pip takes it from the machine's local wheel dir (/opt/wheels)."; \
	   sed -e 's/^torch==2.13.0+cpu$$/torch==2.13.0/' requirements.lock.tmp; } > requirements.lock
	@rm -f requirements.lock.tmp
	@! grep -n '@ file:' requirements.lock || { echo 'requirements.lock pins a local file: reinstall that package from the index first' >&2; exit 1; }

clean-env:
	rm -rf $(VENV)
