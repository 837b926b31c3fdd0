# Two commands set everything up on a fresh machine:
#   make run    create the environment if missing, then run the whole DAG on the embedded default (VAGTA-synth)
#   make test   create the environment if missing, then run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: run test test-fast env system-packages lint bench schema deps clean

run: env
	snakemake --cores all --resources gpu=1
	dvc status

# Two xdist workers, whatever the core count: the long tests run in two fixed lanes (tests/conftest.py), the rest fill
# in (conftest.py schedules them). ~25 min on 2 cores.
XDIST := -n 2
test: env
	python -m pytest $(XDIST)

test-fast: env
	python -m pytest $(XDIST) -m "not slow"

env: $(STAMP) system-packages

# pyproject.toml pins every dependency; torch/torchvision come from the machine's local wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# Debian packages, installed when missing and running as root: ffmpeg/ffprobe (ffmpeg-python drives them, every run
# needs them); slurm-wlm + munge and postgresql only for the engine tests (a single-node SLURM cluster and a PostgreSQL
# server that tests/ start themselves; without them those tests skip, saying why).
REQUIRED_DEB := ffmpeg
ENGINE_DEB   := slurm-wlm munge postgresql
system-packages:
	@missing=$$(for p in $(REQUIRED_DEB) $(ENGINE_DEB); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
	    echo "ffmpeg is missing: install it (Debian/Ubuntu: sudo apt-get install ffmpeg)"; exit 1; \
	  else echo "not installed (the SLURM/PostgreSQL tests will skip): $$missing"; fi; \
	fi

lint: env
	ruff check src tests benchmarks
	snakemake --lint

bench: env
	python benchmarks/bench_data_path.py

# Regenerate workflow/schemas/params.schema.json after changing alertclip/params.py (a test checks they agree).
schema: env
	python -c "import json; from alertclip.params import json_schema; print(json.dumps(json_schema(), indent=2, sort_keys=True))" > workflow/schemas/params.schema.json

# Regenerate every stage's src/ deps in dvc.yaml from the imports after adding, moving or importing a module, and the
# stage outputs README.md and docs/stages.md list from dvc.yaml (tests check both are current).
deps: env
	python -m alertclip.deps
	python -m alertclip.stage_table

clean:
	rm -rf data/synth data/raw data/frames data/.cache results/frames logs .snakemake
