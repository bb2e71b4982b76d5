# Two commands do all set-up: `make demo` and `make test`. Both create .venv and install the pinned
# dependencies on first use; the install re-runs only when pyproject.toml changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test study install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m rlhf.demo

test: $(STAMP)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m pytest -q

study: $(STAMP)  # reproduction study (python -m rlhf.study): about an hour on 2 idle CPU cores (wall time in docs/results/study/results.json), not part of make test
	$(BIN)/python -m rlhf.study

clean:
	rm -rf $(VENV) runs models
