# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.analogmed-installed
export MALLOC_MMAP_THRESHOLD_ ?= 4000000000
export MALLOC_TRIM_THRESHOLD_ ?= 4000000000

.PHONY: demo test setup
setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.py
	python3 scripts/bootstrap.py $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/analogmed demo

test: $(STAMP)
	$(VENV)/bin/ruff check analogmed tests scripts
	$(PY) -m pytest
