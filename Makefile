# Quick start: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	MPLBACKEND=Agg $(BIN)/gpusim compare scenarios/flagship.yaml -o out/flagship

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/collectives.py

clean:
	rm -rf $(VENV) out .pytest_cache
