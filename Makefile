# One entry point for people and CI. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-scenarios test-under-load lint test-reliability test-container fuzz bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo needs the worker and the emulator only, not the test tools.
APP_STAMP := $(VENV)/.installed-app

$(APP_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(APP_STAMP)

demo: $(APP_STAMP)
	$(BIN)/enroller demo

# The everyday suite, under 5 minutes; the real-process scenarios (marked `scenario`, 5-20 s
# each) have their own target. CI runs both (.ci/run).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not scenario"

test-scenarios: $(STAMP)
	$(BIN)/python -m pytest -m scenario --durations=5

# Both suites ROUNDS times in a row while stress-ng keeps both cores busy: the suite must not
# depend on a quiet machine (stress-ng is Debian's `stress-ng` package).
ROUNDS ?= 5
test-under-load: $(STAMP)
	@command -v stress-ng >/dev/null || { echo "test-under-load: install stress-ng (apt-get install stress-ng)"; exit 1; }
	stress-ng --cpu 2 --quiet & load=$$!; trap 'kill $$load' EXIT; \
	for round in $$(seq $(ROUNDS)); do \
	  echo "== round $$round of $(ROUNDS) under load"; \
	  $(BIN)/python -m pytest -q -p no:cacheprovider || exit 1; \
	done

# Every Hypothesis test (marked `fuzz` automatically by tests/conftest.py) with the large
# budget of tests/fuzzing.py; failing examples are kept in .hypothesis/ and replayed first.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m fuzz -o timeout=0

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Benchmarks (issue 7): each script prints one JSON object; the latest are kept in
# benchmarks/results/ and quoted in docs/benchmarks.md. memory.py takes minutes at 50 000.
BENCH_OUT := benchmarks/results

bench: $(STAMP)
	mkdir -p $(BENCH_OUT)
	uptime > $(BENCH_OUT)/load.txt
	$(BIN)/python benchmarks/throughput.py > $(BENCH_OUT)/throughput.json
	$(BIN)/python benchmarks/baseline.py --throughput-json $(BENCH_OUT)/throughput.json > $(BENCH_OUT)/baseline.json
	$(BIN)/python benchmarks/throughput.py --rate-limit 300 --enrollments 600 > $(BENCH_OUT)/throughput-r300.json
	$(BIN)/python benchmarks/baseline.py --rate-limit 300 --enrollments 600 --throughput-json $(BENCH_OUT)/throughput-r300.json > $(BENCH_OUT)/baseline-r300.json
	$(BIN)/python benchmarks/pickup.py > $(BENCH_OUT)/pickup.json
	$(BIN)/python benchmarks/memory.py > $(BENCH_OUT)/memory.json
	uptime >> $(BENCH_OUT)/load.txt
	cat $(BENCH_OUT)/*.json

# The reliability suite at full size (the short cases also run in `make test`).
test-reliability: $(STAMP)
	RELIABILITY_FULL=1 $(BIN)/python -m pytest tests/reliability

# The image and the compose stack in a real Docker engine (tests/container/; issue 15): builds
# the image, acts the README's container block out, runs `enroller demo` in the image. Minutes
# on a vfs engine, so not part of `make test`. It needs a running Docker engine (dockerd).
test-container: $(STAMP)
	@docker info >/dev/null 2>&1 || { echo "test-container: no Docker engine answers; start one (dockerd, or Docker Desktop)"; exit 1; }
	CONTAINER_TESTS=1 $(BIN)/python -m pytest -m container -s --durations=0 tests/container
