# The two quick-start commands: `make build` (install, then run the main job) and `make test`.
PYTHON ?= python3
OUT ?= out
ARGS ?=  # recipe overrides for `make build`, e.g. ARGS=distill.train.threads=1 on cores shared with other jobs

.PHONY: install build test test-fast lint

install:
	$(PYTHON) -m pip install --disable-pip-version-check --root-user-action=ignore -q -e ".[dev]"

# Main job on the embedded default recipe (pocketbert/recipes/build-default.yaml): a 2-layer student distilled
# from all-MiniLM-L6-v2 and paraphrase-MiniLM-L3-v2 together for 1,000 steps on STS-B and SST-2 train sentences,
# exported to ExecuTorch, LiteRT, Core ML and ONNX (fp32, int8), each artifact verified and scored on STS-B dev,
# benchmarked beside the teacher and the L3 peer, reported in $(OUT)/default/report.html. Sized for 20 minutes on
# 2 cores from an empty cache; this round's quiet run took 22.6 (README.md: what it measured, and the next cut).
# A re-run skips finished stages.
build: install
	pocketbert build $(ARGS) --out $(OUT)/default

# The Android core's JVM tests need kotlinc (npm `kotlin-compiler`) and JUnit 4 (Debian `junit4`); the Swift
# core's tests (tests/apps) a Debian trixie root with Swift 6 in ~/.cache/pocketbert/swift (root only, ~2 GB,
# about 2 minutes the first time, under a second after); the report's browser test Debian's chromium. Where a
# set-up cannot run it says why and those tests skip; the JUnit and XCTest summaries are printed at the end.
test: install
	bash android_demo/tools/setup_kotlin.sh
	$(PYTHON) -m pocketbert setup-swift || echo "setup-swift: not available here (see above); the Swift tests will skip"
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium could not be installed: the report render test will skip"
	$(PYTHON) -m pytest -q -ra

# The inner loop: unit tests only (`pytest -m unit`, under 3 minutes on 2 cores). CI runs every tier (`make test`).
test-fast: install
	$(PYTHON) -m pytest -q -m unit

lint:
	$(PYTHON) -m ruff check .
