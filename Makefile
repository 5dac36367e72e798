# The two quick-start commands: `make build` (install, then run the main job) and `make test`.
PYTHON ?= python3
OUT ?= out

.PHONY: install build test test-fast lint

install:
	$(PYTHON) -m pip install --disable-pip-version-check -q -e ".[dev]"

# Main job on the embedded default recipe (pocketbert/recipes/build-default.yaml): all-MiniLM-L6-v2
# distilled into a 3-layer student on the embedded corpus, exported to ExecuTorch, LiteRT, Core ML and
# ONNX (fp32, int8), each artifact verified and scored on STS-B dev, benchmarked beside the teacher,
# reported in $(OUT)/default/report.html. About 11 minutes on 2 cores; a re-run skips finished stages.
build: install
	pocketbert build --out $(OUT)/default

# The Android core's JVM tests need kotlinc (npm `kotlin-compiler`) and JUnit 4 (Debian `junit4`).
test: install
	bash android_demo/tools/setup_kotlin.sh
	$(PYTHON) -m pytest -q -ra

# The inner loop: unit tests only (`pytest -m unit`, under 3 minutes on 2 cores). CI runs every tier (`make test`).
test-fast: install
	$(PYTHON) -m pytest -q -m unit

lint:
	$(PYTHON) -m ruff check .
