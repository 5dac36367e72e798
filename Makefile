# The two quick-start commands: `make build` (install, then run the main job) and `make test`.
PYTHON ?= python3
OUT ?= out

.PHONY: install build test lint

install:
	$(PYTHON) -m pip install --disable-pip-version-check -q -e ".[dev]"

# Main job on the embedded default: the packaged all-MiniLM-L6-v2 teacher -> a 3-layer student
# with the vocabulary trimmed to the shared STS-B + SST-2 sentences, then its STS-B dev score.
build: install
	pocketbert student --teacher minilm --layers uniform:3 --out $(OUT)/student
	pocketbert eval $(OUT)/student --sts ../shared/data/stsb/dev.tsv

test: install
	$(PYTHON) -m pytest -q -ra

lint:
	$(PYTHON) -m ruff check .
