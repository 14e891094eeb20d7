# logpipe: `make up` runs the pipeline, `make test` runs the suite. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# glibc reads this only at process start; logpipe.memory.MALLOC_TUNABLES explains it (a test keeps them equal)
RUN_ENV := GLIBC_TUNABLES=glibc.malloc.hugetlb=1

.PHONY: up test lint bench venv system clean vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $(STAMP)

system:
	scripts/install-system-packages.sh

# The dashboard's charting library (Apache ECharts, the version package.json pins) is committed with
# its license and notice under static/vendor, so the package holds it and installs whole with pip; the
# gateway serves it, no CDN, and the page works offline. `make vendor` copies a new version from npm.
VENDOR := src/logpipe/dashboard/static/vendor
vendor: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	cp node_modules/echarts/dist/echarts.min.js $(VENDOR)/echarts.min.js
	cp node_modules/echarts/LICENSE $(VENDOR)/ECHARTS-LICENSE
	cp node_modules/echarts/NOTICE $(VENDOR)/ECHARTS-NOTICE

venv: $(STAMP)

# numba compiles the JSON scanner and the OTLP and access-log readers once per machine (seconds) and caches them; done
# here, not at a first batch or request
PREPARE_DECODER := $(BIN)/python -c 'from logpipe.codec.ndjson import prepare_decoder; prepare_decoder(); \
	from logpipe.sources.otlp.wire import prepare; prepare(); \
	from logpipe.sources.files.combined import prepare; prepare()'

up: $(STAMP)
	$(PREPARE_DECODER)
	LOGPIPE_SERVICE_CATALOG=$${LOGPIPE_SERVICE_CATALOG:-deploy/service-catalog.example.yaml} $(RUN_ENV) $(BIN)/logpipe up

test: $(STAMP) system
	$(BIN)/ruff check src tests bench
	$(PREPARE_DECODER)
	$(BIN)/pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(PREPARE_DECODER)
	$(RUN_ENV) $(BIN)/python bench/simulator_throughput.py
	$(RUN_ENV) $(BIN)/logpipe bench --scenario all --duration 60

clean:
	rm -rf $(VENV) data tests/artifacts node_modules
