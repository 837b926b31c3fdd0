# Two commands set everything up on a fresh machine:
#   make run    create the environment if missing, then run the whole DAG on the embedded default (VAGTA-synth)
#   make test   create the environment if missing, then run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: run test test-fast env ffmpeg lint bench schema clean

run: env
	snakemake --cores all --resources gpu=1
	dvc status

test: env
	python -m pytest

test-fast: env
	python -m pytest -m "not slow"

env: $(STAMP) ffmpeg

# pyproject.toml pins every dependency; torch/torchvision come from the machine's local wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# ffmpeg/ffprobe are system tools (ffmpeg-python drives them): Debian's package, installed when running as root.
ffmpeg:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else echo "ffmpeg is missing: install it (Debian/Ubuntu: sudo apt-get install ffmpeg)"; exit 1; fi; }

lint: env
	ruff check src tests benchmarks
	snakemake --lint

bench: env
	python benchmarks/bench_data_path.py

# Regenerate workflow/schemas/params.schema.json after changing alertclip/params.py (a test checks they agree).
schema: env
	python -c "import json; from alertclip.params import json_schema; print(json.dumps(json_schema(), indent=2, sort_keys=True))" > workflow/schemas/params.schema.json

clean:
	rm -rf data/synth data/raw data/frames data/.cache results/frames logs .snakemake
