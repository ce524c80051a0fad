# desist: `make run` runs the pipeline on the committed sample; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test ui serve sample clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/desist run

test: $(BIN)/.installed
	bash deploy/postgres.sh   # the deployment test keeps a Dagster instance in PostgreSQL
	$(BIN)/pytest -q -n 2

ui: $(BIN)/.installed
	$(BIN)/desist ui

# Production: PostgreSQL instance, dagster-webserver and dagster-daemon (run queue, schedule, sensors, alerts).
serve: $(BIN)/.installed
	bash deploy/postgres.sh
	$(BIN)/desist serve

sample: $(BIN)/.installed
	$(BIN)/desist generate --people 20000 --seed 2026 --out data/sample

clean:
	rm -rf data/*.duckdb data/*.duckdb.wal data/research_parquet data/logs data/data-quality reports/out .dagster_home .dagster_production
