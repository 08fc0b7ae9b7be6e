# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Everything else is installed by these targets on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CACHE  ?= $(or $(TRACE_STREAM_CACHE),$(HOME)/.cache/trace-stream)

.PHONY: setup demo test lint docs lock unit integration kafka registry tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# uv (a dev dependency, which also writes requirements.lock) installs the project:
	@# about 20 s where pip took 60 with the same cache. The installers' notices go to a
	@# log, shown only if the install fails.
	$(PY) -m pip install -q --upgrade pip uv >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev,s3]' >>$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

kafka: $(STAMP)  ## fetch the Apache Kafka broker jars from Maven Central (cached)
	$(PY) -m devenv.broker

tools:  ## helm, promtool, Kubernetes schemas and a local control plane for the chart tests (cached)
	bash devenv/tools/install.sh
	bash devenv/kube/build.sh >/dev/null

registry: $(STAMP)  ## fetch Apicurio Registry (a real Schema Registry for the tests) from Maven Central (cached)
	$(PY) -c "from devenv.apicurio import fetch, java_home; print(fetch(), java_home())"

setup: $(STAMP) kafka registry

demo: $(STAMP) kafka  ## local broker + tracker + sample trades + the service; Ctrl-C to stop
	$(PY) -m devenv.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# The cache outside the checkout (mypy checks each file's hash): a fresh clone's
	@# check takes about a second instead of 20.
	MYPY_CACHE_DIR=$(CACHE)/mypy $(VENV)/bin/mypy trace_stream devenv bench tests
	bash devenv/lock.sh --check

docs: $(STAMP)  ## build the manual (docs/, mkdocs.yml) with --strict: a broken link fails
	$(PY) -m devenv.docs --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

lock: $(STAMP)  ## rewrite requirements.lock after a change to pyproject.toml
	bash devenv/lock.sh

test: setup tools lint docs  ## everything CI runs
	bash devenv/pytest-once-more.sh $(PY) -m pytest -p no:faulthandler --durations=25

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache site
