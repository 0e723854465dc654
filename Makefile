# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install everything, start the demo
#   make test   - create .venv, install everything (chromium for the browser tests, a Java runtime for Spark), run the whole suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
LINT_PATHS := fer registry demo tests benchmarks scripts app.py

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch 2.14.1 / torchvision 0.29.1 lie on this machine's disk (pip's find-links); pinned so pip takes them, not a download
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e .
	touch $(STAMP)

# the test tools on top: pytest, ruff, Playwright (driving Debian's chromium), gradio_client, PySpark
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -e '.[test]'
	touch $(TEST_STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m demo

# the suite on two workers (pytest-xdist), the 15 slowest tests printed at the end
test: $(TEST_STAMP)
	bash scripts/system-deps.sh
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(TEST_STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

bench: setup
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
