# Conveyor: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup spark demo demo-s3 test test-fast lint services clean

# a virtual environment with the locked dependencies, rebuilt when the lock changes
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# the optional spark job type: Java and the JDBC drivers on the system, pyspark in the venv
$(VENV)/.spark-installed: $(VENV)/.installed requirements-spark.lock scripts/system-packages.sh
	bash scripts/system-packages.sh
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-spark.lock
	touch $@

spark: $(VENV)/.spark-installed

## demo: set up, generate the example's upstream database, run the whole ETL on it
demo: setup
	$(BIN)/python examples/shop/generate.py
	cd examples/shop && ../../$(BIN)/conveyor run
	@echo
	@echo "Next: 'source .venv/bin/activate' puts 'conveyor' on your PATH; then 'cd examples/shop' and"
	@echo "try 'conveyor ls', 'conveyor runs' and the rest of the tour in README.md."
	@echo "The dashboard of its runs: 'cd examples/shop && ../../$(BIN)/conveyor ui', then open http://127.0.0.1:8086"

## demo-s3: the same example with its lake in a bucket of a throwaway local S3 server (moto on
## 127.0.0.1): copies the project to build/demo-s3/shop with lake.path s3://conveyor-demo/shop,
## runs it, lists the bucket and stops the server (scripts/demo_s3.py, docs/deploy.md)
demo-s3: setup
	$(BIN)/python examples/shop/generate.py
	$(BIN)/python scripts/demo_s3.py

## test: set up, make sure PostgreSQL and MariaDB are up, lint, type-check, run every test
## (two workers; a test file's tests stay on one worker, so module fixtures are built once)
test: setup spark services lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not postgres and not mysql and not spark"

lint: setup
	$(BIN)/ruff check conveyor tests examples bench
	$(BIN)/ruff format --check conveyor tests examples bench
	$(BIN)/mypy conveyor

services:
	bash scripts/services.sh

clean:
	rm -rf $(VENV) examples/shop/lake examples/shop/warehouse examples/shop/.conveyor examples/shop/upstream build/demo-s3
