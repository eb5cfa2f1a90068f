# tfmodels developer commands. Every target installs what it needs into .venv itself.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
RUN_DIR ?= runs/demo
# The paired study's fine-tuning seeds (`make study`): 5 seeds on one shared pretraining.
STUDY_SEEDS ?= 5
# Test processes (pytest-xdist): a test spends most of its time tracing tf.functions in one Python
# thread, so two processes keep 2 cores busy. TEST_WORKERS=0 runs every test in one process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

.PHONY: install test test-all demo study bench clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# The pinned stack through uv (requirements-installer.txt): on a fresh machine about 1 minute where pip
# takes about 2.5 (BUILD.md), the same releases; pip installs it if uv cannot.
$(STAMP): $(PY) requirements.txt requirements-dev.txt requirements-installer.txt setup.cfg pyproject.toml
	($(PY) -m pip install --quiet -r requirements-installer.txt \
	  && $(VENV)/bin/uv pip install --python $(PY) --compile-bytecode --quiet -r requirements-dev.txt) \
	  || $(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The benchmark extra (requirements-bench.txt): torch's CPU build with its dependencies, then
# transformers without its own (keras-hub's requirements already hold what it imports).
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet $$(grep '^torch==' requirements-bench.txt)
	$(PY) -m pip install --quiet --no-deps $$(grep '^transformers==' requirements-bench.txt)
	touch $(BENCH_STAMP)

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-all: $(STAMP)
	$(PYTEST)

demo: $(STAMP)
	$(PY) -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=$(RUN_DIR)

# The paired-seed study behind the README's table: one shared pretraining, (a) pretrained and (b) random-init
# fine-tuning with STUDY_SEEDS seeds each, the LSTM and TF-IDF rows; results.md/.json and validation_curves.png.
study: $(STAMP)
	$(PY) -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/study --seeds=$(STUDY_SEEDS) \
		--override=study.lstm_config=configs/lstm_sentiment_zh.yaml

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info
