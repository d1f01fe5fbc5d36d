# xpstream — the two commands are `make demo` and `make test`; both run `make setup` first.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
KAFKA_LIB := deploy/kafka/lib
export XP_HOME ?= $(CURDIR)/.xp
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

HELM_VERSION := v4.3.2

.PHONY: setup native js browser wrk helm flink demo test test-unit test-fuzz test-integration test-e2e audit bench lint fmt clean

setup: $(VENV)/.synced $(KAFKA_LIB)/.resolved native js  ## .venv with everything + Kafka jars (idempotent)

# The Flink runner (`xp stream run --runner flink`, docs/flink.md): PyFlink in its own venv, pinned with hashes
# (it pins pandas<2.3, pyarrow<17 and numpy<2.2 through apache-beam: it cannot share .venv), and the job's
# connector jars from Maven Central. Each step reruns only when its lock/pom changed.
FLINK_VENV := .venv-flink
FLINK_LIB := deploy/flink/lib
FLINK_JAVA := $(wildcard deploy/flink/src/main/java/io/xpstream/flink/*.java)
FLINK_UDF := $(FLINK_LIB)/xpstream-flink-udf.jar
flink: $(FLINK_VENV)/.synced $(FLINK_LIB)/.resolved $(FLINK_UDF)  ## .venv-flink (PyFlink) + the Flink job's jars (idempotent)

$(FLINK_VENV)/.synced: deploy/flink/requirements.lock | $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 $(FLINK_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(FLINK_VENV)/bin/python deploy/flink/requirements.lock
	@touch $@

$(FLINK_LIB)/.resolved: deploy/flink/pom.xml
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven (e.g. apt-get install maven)" >&2; exit 1; }
	@rm -rf $(FLINK_LIB)
	mvn --batch-mode --quiet -Dstyle.color=never -f deploy/flink/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/$(FLINK_LIB) -DexcludeTransitive=true
	@touch $@

# The job's Java (the attribution process table function, decision 0102), compiled against the Flink jars
# of PyFlink's wheel (the same Flink 2.2.1 a cluster's image has): rebuilt only when a source changed.
$(FLINK_UDF): $(FLINK_JAVA) $(FLINK_LIB)/.resolved $(FLINK_VENV)/.synced
	@command -v javac >/dev/null || { echo "error: javac not found: install a JDK 17" >&2; exit 1; }
	@rm -rf $(FLINK_LIB)/.classes && mkdir -p $(FLINK_LIB)/.classes
	javac --release 17 -nowarn -cp "$$($(FLINK_VENV)/bin/python -c 'import pyflink, os; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')/*" \
	    -d $(FLINK_LIB)/.classes $(FLINK_JAVA)
	jar --create --file $@ -C $(FLINK_LIB)/.classes io
	@rm -rf $(FLINK_LIB)/.classes

# The JavaScript SDKs the tests drive (tests/js/package-lock.json; stamped on the lockfile's hash, so a
# no-op when installed). Without node/npm: one warning, and those tests skip with the reason.
JS_DIR := tests/js
js:
	@if ! command -v npm >/dev/null || ! command -v node >/dev/null; then \
	  echo "warning: node/npm not found: the JavaScript SDK tests will skip" >&2; \
	else \
	  want=$$(sha256sum $(JS_DIR)/package-lock.json | cut -d' ' -f1); \
	  have=$$(cat $(JS_DIR)/node_modules/.xp-lock-hash 2>/dev/null || true); \
	  if [ "$$want" != "$$have" ]; then \
	    npm ci --prefix $(JS_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error && \
	    echo "$$want" > $(JS_DIR)/node_modules/.xp-lock-hash; \
	  fi; \
	fi

# The C hashes of assignment/ (a no-op when up to date; without a C compiler: one warning, pure Python).
native: $(VENV)/.synced
	@$(BIN)/python -m assignment.native_build

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

$(KAFKA_LIB)/.resolved: deploy/kafka/pom.xml
	@command -v java >/dev/null || { echo "error: java not found: install a Java 17 JDK (e.g. apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven (e.g. apt-get install maven)" >&2; exit 1; }
	@rm -rf $(KAFKA_LIB)
	mvn --batch-mode --quiet -Dstyle.color=never -f deploy/kafka/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB) -DincludeScope=runtime
	@touch $@

# The npm packages of the SDK samples (examples/sdk/node, examples/sdk/react) and the React page's build
# (examples/sdk/react/dist, git-ignored). `npm ci --ignore-scripts` runs only when a package-lock.json's
# hash differs from the stamp in its node_modules/; the page is rebuilt only when its sources' hash
# differs from the stamp in dist/. Without npm: one warning, and the Node and React sample tests skip.
SDK_NPM_DIRS := examples/sdk/node examples/sdk/react
SDK_REACT := examples/sdk/react
.PHONY: sdk-samples
setup: sdk-samples
sdk-samples:  ## npm packages of the SDK samples and the React sample's build (idempotent; skipped without npm)
	@if ! command -v npm >/dev/null || ! command -v node >/dev/null; then \
	  echo "warning: node/npm not found: the Node and React SDK samples are not installed (their tests skip)" >&2; exit 0; fi; \
	for dir in $(SDK_NPM_DIRS); do \
	  want=$$(sha256sum $$dir/package-lock.json | cut -d' ' -f1); \
	  if [ "$$(cat $$dir/node_modules/.xp-lock-hash 2>/dev/null)" != "$$want" ]; then \
	    echo "npm ci in $$dir"; \
	    (cd $$dir && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || exit 1; \
	    echo "$$want" > $$dir/node_modules/.xp-lock-hash; \
	  fi; \
	done; \
	want=$$(cat $(SDK_REACT)/package-lock.json $(SDK_REACT)/build.mjs $(SDK_REACT)/index.html $(SDK_REACT)/src/* | sha256sum | cut -d' ' -f1); \
	if [ "$$(cat $(SDK_REACT)/dist/.xp-build-sha256 2>/dev/null)" != "$$want" ]; then \
	  echo "building $(SDK_REACT)"; \
	  (cd $(SDK_REACT) && npm run --silent build) || exit 1; \
	  echo "$$want" > $(SDK_REACT)/dist/.xp-build-sha256; \
	fi

# Debian's Chromium drives the browser tests (Playwright's own browser download does not work offline).
CHROMIUM ?= /usr/bin/chromium
browser:  ## Debian's chromium for the browser tests (installs it when missing; needs root or sudo)
	@test -x $(CHROMIUM) || { \
	  command -v apt-get >/dev/null || { echo "error: $(CHROMIUM) not found and no apt-get: install Chromium and set CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# helm for the chart's test (tests/unit/deploy/test_helm_chart.py runs `helm lint` and `helm template` when it
# finds it; without it the chart is still rendered and checked in Python). Built from the Go module, pinned;
# the first build took 3 min 15 s on the 2-core machine with an empty module cache (issue #19), so it is
# not part of `make setup`.
$(TOOLS)/bin/helm:
	@command -v go >/dev/null || { echo "error: go not found: install Go to build helm (or put helm on PATH)" >&2; exit 1; }
	GOBIN=$(CURDIR)/$(TOOLS)/bin GOFLAGS=-mod=mod go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

helm: $(TOOLS)/bin/helm  ## helm $(HELM_VERSION) under .tools/bin (idempotent; ~3 min the first time)

demo: setup  ## start the stack, push simulated traffic through the pipeline, print results
	$(BIN)/python -m xpstream.demo

test: setup browser flink  ## every test: unit, fuzzing, security audit, then integration (real Kafka + chDB) and end to end
	$(BIN)/pytest tests/unit -q
	$(BIN)/pytest tests/fuzz -q
	@$(BIN)/python .ci/audit.py
	$(BIN)/pytest tests/integration tests/e2e -q

test-unit: setup
	$(BIN)/pytest tests/unit -q

test-fuzz: setup  ## generated hostile input (XP_FUZZ_PROFILE=deep for a longer hunt)
	$(BIN)/pytest tests/fuzz -q

audit: setup  ## bandit over the product code, pip-audit over the locked dependencies
	@$(BIN)/python .ci/audit.py

test-integration: setup flink
	$(BIN)/pytest tests/integration -q

test-e2e: setup browser
	$(BIN)/pytest tests/e2e -q

# The HTTP load generator of bench/bench_assignment_http.py (that bench skips, with a line, without it).
wrk:  ## Debian's wrk for the HTTP benchmark (installs it when missing; needs root or sudo)
	@command -v wrk >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "warning: wrk not found and no apt-get: install wrk for the HTTP benchmark" >&2; exit 0; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's wrk for the HTTP benchmark"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null \
	    || echo "warning: could not install wrk: the HTTP benchmark will skip" >&2; }

bench: setup wrk  ## benchmarks under bench/, each beside its baseline
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-$(BIN)/xp stack down 2>/dev/null
	rm -rf $(VENV) $(TOOLS) $(KAFKA_LIB) $(addsuffix /node_modules,$(SDK_NPM_DIRS)) $(SDK_REACT)/dist .xp .pytest_cache .mypy_cache .ruff_cache assignment/_native_hash*.so
