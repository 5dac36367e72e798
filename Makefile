# The two quick-start commands: `make build` (install, then run the main job) and `make test`.
PYTHON ?= python3
OUT ?= out

.PHONY: install build test lint

install:
	$(PYTHON) -m pip install --disable-pip-version-check -q -e ".[dev]"

# Main job on the embedded default: the packaged all-MiniLM-L6-v2 teacher -> a 3-layer student
# (teacher layers 0, 2, 5), then its STS-B dev score.
build: install
	pocketbert student --teacher minilm --layers uniform:3 --out $(OUT)/student
	pocketbert eval $(OUT)/student --sts ../shared/data/stsb/dev.tsv

# The Android core's JVM tests need kotlinc (npm `kotlin-compiler`) and JUnit 4 (Debian `junit4`).
test: install
	bash android_demo/tools/setup_kotlin.sh
	$(PYTHON) -m pytest -q -ra

lint:
	$(PYTHON) -m ruff check .
