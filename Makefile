# Two entry points: `make bench` (set up, then the main job) and `make test` (set up, then the
# tests: ruff, mypy, pytest). Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bench test lint clean

$(STAMP): pyproject.toml constraints.txt examples/harness-example-plugin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' \
		-e examples/harness-example-plugin
	# torchattacks (for the throughput benchmarks) pins an old `requests` it never imports
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt torchattacks
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/harness bench --attack fgsm --defense advtrain

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV)
