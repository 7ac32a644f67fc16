# Two commands for a newcomer: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUBMISSIONS ?=

.PHONY: lab lab-solutions test test-browser browser-deps redis-deps venv kernel release normalize check-release grade simulator bench bench-grading clean

# JupyterLab refuses to start as root without --allow-root (containers, cloud workspaces); a normal
# user never gets the flag. Evaluated when the recipe runs, so `sudo make lab` is judged as root.
ALLOW_ROOT = $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)
# make lab LAB_ARGS="--port 8899 --no-browser --ServerApp.token=secret"  (any `jupyter lab` option)
LAB_ARGS ?=
# The folder JupyterLab serves; `make lab-solutions` serves the whole course for authors.
LAB_DIR ?= notebooks

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

kernel: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (Production AI Patterns)" >/dev/null

## make lab: set up and start JupyterLab on notebooks/ (options: LAB_ARGS="--port 8899 --no-browser")
lab: kernel
	$(VENV)/bin/jupyter lab --notebook-dir=$(LAB_DIR) $(ALLOW_ROOT) $(LAB_ARGS)

## make lab-solutions: JupyterLab on the whole course, opened at solutions/ (instructors and authors)
lab-solutions: kernel
	$(VENV)/bin/jupyter lab --notebook-dir=. --ServerApp.default_url=/lab/tree/solutions $(ALLOW_ROOT) $(LAB_ARGS)

## make test: set up and run the whole test suite
test: kernel redis-deps
	$(VENV)/bin/ruff check course_utils tests benchmarks data
	$(VENV)/bin/ruff format --check course_utils tests benchmarks data
	$(PY) -m pytest

## make release: regenerate notebooks/ from solutions/ (and normalise solution metadata)
release: $(STAMP)
	$(PY) -m course_utils.authoring release

## make normalize: undo what JupyterLab autosave did to tracked notebooks, then release
# Solutions whose code is unchanged get their committed outputs back; edited ones are re-executed
# at the CI time scale (what nbval expects); notebooks/ is regenerated.
normalize: kernel
	$(PY) -m course_utils.autosave
	$(PY) -m course_utils.authoring release

## make check-release: fail if notebooks/ is out of date with solutions/
check-release: $(STAMP)
	@$(PY) -m course_utils.authoring check || { \
	  echo "After editing or running notebooks in JupyterLab (autosave), run \`make normalize\` to fix this." >&2; \
	  exit 1; }

## make test-browser: every notebook in headless Chromium against `make lab` (Run All, widgets, screenshots)
test-browser: kernel browser-deps
	@# Two notebooks at a time (one JupyterLab and one Chromium per worker); -rA prints each
	@# notebook's report (timings, screenshot paths) after the run.
	$(PY) -m pytest tests/browser/browser_notebooks.py -n 2 --dist load -rA $(BROWSER_ARGS)

# A real Redis server for lessons 07 and 08 (limiters, budgets, the event bus): Debian's redis-server,
# security-maintained by Debian. Tests start their own private server from it; REDIS_URL overrides.
redis-deps:
	@test -n "$$REDIS_URL" || command -v redis-server >/dev/null || test -x /usr/bin/redis-server || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  else echo "install Redis first: sudo apt-get install -y redis-server (or set REDIS_URL)" >&2; exit 1; fi; }

# Debian's Chromium (Playwright cannot download its own browser offline); CI runs as root.
browser-deps:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update && apt-get install -y chromium chromium-driver; \
	  else echo "install Chromium first: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; fi; }

## make grade SUBMISSIONS=path/to/folder-or.zip: grade every submission there (results in SUBMISSIONS/graded/)
# On a LocalCluster by default; GRADE_SCHEDULER=tcp://host:8786 grades on a running Dask cluster.
GRADE_SCHEDULER ?=
grade: kernel
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path/to/folder-or.zip [GRADE_SCHEDULER=tcp://host:8786] [GRADE_ARGS='--workers 2 --jobs 2']"; exit 2; }
	$(PY) -m course_utils.grading "$(SUBMISSIONS)" $(if $(GRADE_SCHEDULER),--scheduler "$(GRADE_SCHEDULER)") $(GRADE_ARGS)

## run the simulated Anthropic API on http://127.0.0.1:8765
simulator: $(STAMP)
	$(PY) -m course_utils.mock_provider --port 8765

bench: $(STAMP)
	$(PY) benchmarks/bench_simulator.py

## make bench-grading: 200 copies of lesson 03's solution on 1 then 2 workers, then on a command-line
## Dask cluster with a worker killed mid-run (figures in README)
bench-grading: kernel
	$(PY) benchmarks/grade_throughput.py --scaling --copies 200
	$(PY) benchmarks/grade_cluster.py --copies 200

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
