# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tfkfp-installed

.PHONY: demo test test-gpu-image test-fast lint format components docs golden bench images lock clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tfkfp demo

# Every test, on three pytest-xdist workers (most of the time is waiting: subprocesses, pip,
# Docker builds, servers); tests sharing a module fixture stay on one worker (--dist loadgroup,
# tests/conftest.py). Then the `serial` tests (timed, or signalling pytest's own process) alone.
# --durations prints where the time went. The GPU image's test is left to `make test-gpu-image`.
test: $(STAMP)
	@rc=0; \
	$(BIN)/python -m pytest -m "not serial and not gpu_image" -n 3 --dist loadgroup --durations=30 || rc=$$?; \
	$(BIN)/python -m pytest -m serial --durations=10 || rc=$$?; \
	exit $$rc

# The GPU image (Dockerfile.gpu) built and its trainer run on CPU as a restricted pod; the build
# downloads several GB of CUDA wheels, so `make test` leaves it out. Writes bench/results/gpu_image.json.
test-gpu-image: $(STAMP)
	$(BIN)/python -m pytest -m gpu_image -n 0 --durations=5 tests/test_images.py

# The inner loop: every test but the `slow` and `pipeline` tiers (docs/development.md says which
# go there), one pytest-xdist worker per core up to four. bench/tests_fast.py runs it and, when it
# passes, writes its wall time and test count into bench/results/tests.json (and tests.md, which
# the docs embed); --durations shows which tests cost the most.
test-fast: $(STAMP)
	$(BIN)/python -m bench.tests_fast --durations=15

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Published component specs (components/*.yaml); tests fail when they are stale.
components: $(STAMP)
	$(BIN)/tfkfp compile-components

# The generated stage reference of the docs site (docs/reference/stages.md), from the
# components' signatures and docstrings; tests/test_docs.py fails when it is stale.
docs: $(STAMP)
	$(BIN)/python -m tfkfp.docs

# Benchmarks (needs the images): ratios against baselines measured in the same
# run, written to bench/results/ (JSON, results.md, results.png).
bench: $(STAMP)
	$(BIN)/python -m bench

# The CPU image tfkfp:<version> (Dockerfile.cpu); `tfkfp images build --gpu` for tfkfp-gpu.
images: $(STAMP)
	$(BIN)/tfkfp images build

# Re-resolve constraints.txt from setup.cfg (run after changing dependencies). Pins that differ
# on newer Pythons (lines with a `; python_version` marker) are kept as they are: check them
# with `make test`, which installs the lock on Python 3.12 and 3.13 too.
lock:
	rm -rf /tmp/tfkfp-lock && $(PYTHON) -m venv /tmp/tfkfp-lock
	/tmp/tfkfp-lock/bin/pip install --quiet '.[dev]'
	grep ';' constraints.txt > constraints.markers || true
	{ head -2 constraints.txt; /tmp/tfkfp-lock/bin/pip freeze --exclude-editable | grep -v '^tfkfp' \
	    | grep -v -i -E "^($$(cut -d= -f1 constraints.markers | sort -u | paste -sd'|'))=="; \
	  cat constraints.markers; \
	  echo tensorflow-cpu==$$(/tmp/tfkfp-lock/bin/pip show tensorflow | awk '/^Version/{print $$2}'); } > constraints.new
	mv constraints.new constraints.txt && rm constraints.markers

clean:
	rm -rf build serving local_outputs

# Golden compiled YAML of every pipeline (tests/golden/); review the diff before committing.
golden: $(STAMP)
	@for p in pipelines/*/pipeline.py; do name=$$(basename $$(dirname $$p)); \
	  env -u TFKFP_IMAGE -u TFKFP_GPU_IMAGE $(BIN)/tfkfp compile $$name -o tests/golden/$$name.yaml || exit 1; done
