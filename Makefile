# Two commands for a newcomer: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUBMISSIONS ?=

.PHONY: lab test venv kernel release check-release grade simulator bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

kernel: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (Production AI Patterns)" >/dev/null

## make lab: set up and start JupyterLab on notebooks/
lab: kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

## make test: set up and run the whole test suite
test: kernel
	$(PY) -m pytest

## make release: regenerate notebooks/ from solutions/ (and normalise solution metadata)
release: $(STAMP)
	$(PY) -m course_utils.authoring release

## make check-release: fail if notebooks/ is out of date with solutions/
check-release: $(STAMP)
	$(PY) -m course_utils.authoring check

## make grade SUBMISSIONS=path/to/folder: grade every notebook there (results in SUBMISSIONS/graded/)
grade: kernel
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path/to/folder [GRADE_ARGS='--jobs 4']"; exit 2; }
	$(PY) -m course_utils.grading "$(SUBMISSIONS)" $(GRADE_ARGS)

## run the simulated Anthropic API on http://127.0.0.1:8765
simulator: $(STAMP)
	$(PY) -m course_utils.mock_provider --port 8765

bench: $(STAMP)
	$(PY) benchmarks/bench_simulator.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
