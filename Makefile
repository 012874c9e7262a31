# EagleRec: `make run` builds and serves the platform on the bundled data; `make test` passes the tests.
# Both install what they need first (uv, the two locked environments). `make help` lists every target.

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
PYTHON_VERSION := 3.11
ML_ENV := .venvs/ml
AIRFLOW_ENV := .venvs/airflow
SPARK_ENV := .venvs/spark
ML_BIN := $(ML_ENV)/bin

# Telemetry off for every tool: the variables come from the one file that lists them.
include eaglerec/offline.env
# Local settings (see .env.example), if any.
-include .env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' eaglerec/offline.env $(wildcard .env))
EAGLEREC_HOME ?= $(CURDIR)/var
export EAGLEREC_HOME

# `make run EXECUTOR=celery`: Airflow's tasks go through a loopback redis-server to a Celery worker.
ifdef EXECUTOR
export EAGLEREC_AIRFLOW_EXECUTOR := $(EXECUTOR)
endif
# `make run ENGINE=spark`: dbt builds the features on a local Spark (the Spark env, installed first).
ifdef ENGINE
export EAGLEREC_FEATURE_ENGINE := $(ENGINE)
endif

# uv from PATH, else a private copy installed from PyPI (the only registry these machines reach).
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)

.PHONY: help install envs system-packages install-spark run run-direct airflow mlflow train serve bento stop test test-scale test-fast lint bench-features \
	bench-online bench-quality bench-serving bench-events bench-retrieval bench-training lock clean distclean tune

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python$(PYTHON_VERSION) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as on these machines)
# every process then compiles TensorFlow and pandas from source again: `import tensorflow` took 24 s instead of 10 s.
$(ML_ENV)/.synced: locks/ml.lock.txt pyproject.toml | $(UV)
	test -x $(ML_BIN)/python || $(UV) venv --quiet --python $(PYTHON_VERSION) $(ML_ENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(ML_BIN)/python locks/ml.lock.txt
	$(UV) pip install --quiet --python $(ML_BIN)/python --no-deps -e .
	touch $@

$(AIRFLOW_ENV)/.synced: locks/airflow.lock.txt | $(UV)
	test -x $(AIRFLOW_ENV)/bin/python || $(UV) venv --quiet --python $(PYTHON_VERSION) $(AIRFLOW_ENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(AIRFLOW_ENV)/bin/python locks/airflow.lock.txt
	touch $@

# Only for dbt on Spark (ENGINE=spark, make test-scale): not part of make install.
$(SPARK_ENV)/.synced: locks/spark.lock.txt | $(UV)
	@command -v java >/dev/null || { echo "dbt on Spark needs a JRE 17+ (apt-get install openjdk-17-jre-headless)"; exit 1; }
	test -x $(SPARK_ENV)/bin/python || $(UV) venv --quiet --python $(PYTHON_VERSION) $(SPARK_ENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(SPARK_ENV)/bin/python locks/spark.lock.txt
	touch $@

install: envs system-packages ## Create both locked environments (ML and Airflow) with uv, and the Debian packages

install-spark: install $(SPARK_ENV)/.synced ## Also the Spark environment (dbt-spark, PySpark; needs a JRE)

envs: $(ML_ENV)/.synced $(AIRFLOW_ENV)/.synced ## Only the two Python environments (the Dockerfile uses this)

system-packages: ## Install the Debian packages the platform and tests use (redis-server, chromium) when missing
	@missing="$$(command -v redis-server >/dev/null || echo redis-server) $$(command -v chromium >/dev/null || echo chromium)"; \
	if [ -n "$$(echo $$missing)" ]; then echo "installing (Debian):$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

run: install $(if $(filter spark,$(ENGINE)),$(SPARK_ENV)/.synced) ## Start MLflow and Airflow, run the DAG chain (features, training, deploy) on the bundled sample, serve the champion (ENGINE=spark, EXECUTOR=celery)
	$(MAKE) --no-print-directory mlflow
	$(ML_BIN)/eaglerec airflow start
	$(ML_BIN)/eaglerec airflow run $(if $(EPOCHS),--epochs $(EPOCHS))
	$(MAKE) --no-print-directory serve
	@echo
	@echo "EagleRec is up (make stop ends it all):"
	@echo "  Airflow UI       http://127.0.0.1:$${EAGLEREC_AIRFLOW_PORT:-8080}  user eaglerec, generated password in"
	@echo "                   $(EAGLEREC_HOME)/airflow/simple_auth_manager_passwords.json.generated"
	@echo "  MLflow UI        http://127.0.0.1:5000  (experiments eaglerec-rankers, eaglerec-retrievers, eaglerec-comparisons)"
	@echo "  Movie web site   http://127.0.0.1:$${EAGLEREC_SERVE_PORT:-3000}/"
	@echo "  Recommender API  http://127.0.0.1:$${EAGLEREC_SERVE_PORT:-3000}  e.g. curl -s 127.0.0.1:3000/recommend -H 'Content-Type: application/json' -d '{\"user_id\": 1}'"
	@echo "  Model comparison $(EAGLEREC_HOME)/reports/model_comparison.html"

run-direct: install ## The same pipeline without Airflow: each stage's CLI in order (for debugging a stage)
	$(ML_BIN)/eaglerec ingest
	$(ML_BIN)/eaglerec take-events
	$(ML_BIN)/eaglerec validate
	$(ML_BIN)/eaglerec build-features
	$(ML_BIN)/eaglerec show-marts
	$(ML_BIN)/eaglerec feast-apply
	$(ML_BIN)/eaglerec materialize
	$(MAKE) --no-print-directory train
	$(MAKE) --no-print-directory serve

test: install ## Run every test (unit, integration on the bundled data, contracts)
	$(ML_BIN)/python -m pytest

test-scale: install-spark ## Run the scale-out tests (marker scale_out: Airflow's chain through a real Celery worker); CI runs them after make test
	$(ML_BIN)/python -m pytest -m scale_out

test-fast: install ## Run the tests that take seconds (no dbt build of the bundled data)
	$(ML_BIN)/python -m pytest -m "not slow"

lint: install ## Lint Python with ruff
	$(ML_BIN)/ruff check .

bench-features: install ## Benchmark ingest + gate + dbt build on synthetic data (SIZES="1000000 25000000")
	$(ML_BIN)/python benchmarks/features.py $(if $(SIZES),--sizes $(SIZES))

mlflow: install ## Start the MLflow tracking server and UI on 127.0.0.1:5000 (state in $EAGLEREC_HOME/mlflow)
	$(ML_BIN)/eaglerec tracking-server start

train: mlflow ## Train the catalogue's default models on the marts, refit the served ones on all ratings, then compare (make run first; `eaglerec models`)
	$(ML_BIN)/eaglerec train --defaults $(if $(EPOCHS),--epochs $(EPOCHS))
	$(ML_BIN)/eaglerec refit
	$(ML_BIN)/eaglerec compare

tune: mlflow ## Tune a model on validation with Optuna, then train its best configuration (MODEL=din TRIALS=20 MINUTES=30)
	$(ML_BIN)/eaglerec tune --model $(or $(MODEL),din) --trials $(or $(TRIALS),20) $(if $(MINUTES),--timeout-minutes $(MINUTES))

bench-quality: train ## Train every model on the full bundled data and print the comparison table (same as train)

serve: mlflow ## Start the recommender on 127.0.0.1:3000 (needs registered champions: make train)
	$(ML_BIN)/eaglerec serve start

bento: install ## Build the recommender bento (offline) into $BENTOML_HOME
	$(ML_BIN)/bentoml build -f bentos/recommender/bentofile.yaml .

airflow: install ## Start the Airflow services (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1
	$(ML_BIN)/eaglerec airflow start

stop: ## Stop the services started by make (by PID)
	-$(ML_BIN)/eaglerec serve stop
	-$(ML_BIN)/eaglerec airflow stop
	-$(ML_BIN)/eaglerec tracking-server stop

bench-online: install ## Benchmark Feast online reads, SQLite vs Redis (needs the marts: make run first)
	$(ML_BIN)/python benchmarks/online_features.py

bench-retrieval: install ## Benchmark the vector retrievers' approximate index against the exact scan (9.7k and 62k movies)
	$(ML_BIN)/python benchmarks/retrieval_index.py $(if $(SIZES),--sizes $(SIZES))

bench-events: mlflow ## Benchmark the event log, POST /events at concurrency 8 and impression logging (make run first)
	$(ML_BIN)/python benchmarks/events.py

bench-serving: mlflow ## Benchmark /recommend under locust load, 1 and 2 workers, concurrency 1 and 16 (make run first)
	$(ML_BIN)/python benchmarks/serving.py $(if $(RANKER),--ranker $(RANKER))

bench-training: install ## Benchmark an epoch streamed from parquet vs in memory, then a full 25M epoch (bench-features SIZES=25000000 first)
	$(ML_BIN)/python benchmarks/training_speed.py --models $(or $(MODELS),wide_and_deep din)

lock: | $(UV) ## Re-resolve the lock files from locks/*.in (needs the package registry)
	$(UV) pip compile --quiet locks/ml.in --python-version $(PYTHON_VERSION) -o locks/ml.lock.txt
	$(UV) pip compile --quiet locks/airflow.in --python-version $(PYTHON_VERSION) -o locks/airflow.lock.txt
	$(UV) pip compile --quiet locks/spark.in --python-version $(PYTHON_VERSION) -o locks/spark.lock.txt

clean: ## Remove runtime state (var/) and dbt's build files
	rm -rf var dbt_project/target dbt_project/logs .pytest_cache .ruff_cache

distclean: clean ## Also remove the environments and the private uv
	rm -rf .venvs .tools
