# Two commands for a newcomer: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUBMISSIONS ?=

.PHONY: lab update lab-solutions test test-fast test-browser browser-deps redis-deps venv kernel release normalize check-release grade simulator bench bench-grading clean

# JupyterLab refuses to start as root without --allow-root (containers, cloud workspaces); a normal
# user never gets the flag. Evaluated when the recipe runs, so `sudo make lab` is judged as root.
ALLOW_ROOT = $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)
# make lab LAB_ARGS="--port 8899 --no-browser"  (any `jupyter lab` option)
LAB_ARGS ?=
# The student's working copy (git-ignored), filled from notebooks/: JupyterLab's autosave writes
# there, never into tracked files, so `git pull` of a course fix cannot conflict with an answer.
WORK ?= my-work
# Checked (and installed as root) by redis-deps and browser-deps; variables so a test can point
# them at a missing file.
REDIS_SERVER ?= $(or $(shell command -v redis-server),/usr/bin/redis-server)
CHROMIUM ?= /usr/bin/chromium

# Built under a lock: two `make` started together on a fresh clone (`make lab` in two terminals,
# `make lab` beside `make test`, CI's two browser workers) must not pip-install into one venv at once.
# The second waits for the lock, finds the stamp newer than its inputs and does nothing.
#
# uv installs the pinned requirements (every version is pinned with ==) in parallel: about 20 s where
# pip takes 40-65 s single-threaded, most of `make test`'s setup on a fresh clone. --compile-bytecode
# writes the .pyc files at install time, as pip does: where PYTHONDONTWRITEBYTECODE is set (CI images
# often set it) Python never writes them itself, and every process would compile every module it
# imports. uv is itself pip-installed, at a pinned version, into the venv. Where uv cannot install (its
# index unreachable, a platform without its wheel), pip does the same install, as before.
UV_VERSION := 0.13.10
UV := $(VENV)/bin/uv
$(STAMP): requirements.txt pyproject.toml
	@mkdir -p $(VENV)
	@flock $(VENV)/.build.lock sh -ec '\
	  if [ $(STAMP) -nt requirements.txt ] && [ $(STAMP) -nt pyproject.toml ]; then exit 0; fi; \
	  set -x; \
	  test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  if $(PY) -m pip install --quiet uv==$(UV_VERSION) \
	     && $(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt \
	     && $(UV) pip install --quiet --python $(PY) --no-deps -e .; then :; else \
	    echo "uv could not install the requirements; installing them with pip" >&2; \
	    $(PY) -m pip install --quiet --upgrade pip; \
	    $(PY) -m pip install --quiet -r requirements.txt; \
	    $(PY) -m pip install --quiet --no-deps -e .; \
	  fi; \
	  touch $(STAMP)'

venv: $(STAMP)

# The kernel and JupyterLab's settings overrides (no news pop-up), in the venv only. Safe when several
# make targets run it at once: it writes under a lock, and only what differs (course_utils/jupyter_env.py).
# compileall: the course library's .pyc files, for the same reason as --compile-bytecode above (only
# files changed since the last run are compiled again; __pycache__/ is git-ignored).
kernel: $(STAMP)
	@$(PY) -m course_utils.jupyter_env
	@$(PY) -m compileall -q course_utils >/dev/null

## make lab: set up, copy new lessons into my-work/ (never over yours), start JupyterLab there
lab: kernel
	@$(PY) -m course_utils.workspace init --official notebooks "$(WORK)"
	$(PY) -m jupyterlab --notebook-dir="$(WORK)" $(ALLOW_ROOT) $(LAB_ARGS)

## make update: after `git pull`, bring new and updated lessons into my-work/ (your edited ones stay)
update: $(STAMP)
	@$(PY) -m course_utils.workspace update --official notebooks "$(WORK)"

## make lab-solutions: JupyterLab on the whole course, opened at solutions/ (instructors and authors)
lab-solutions: kernel
	$(PY) -m jupyterlab --notebook-dir=. --ServerApp.default_url=/lab/tree/solutions $(ALLOW_ROOT) $(LAB_ARGS)

## make test: set up and run the whole test suite (installs Redis and Chromium as root when missing)
test: kernel redis-deps browser-deps
	$(VENV)/bin/ruff check course_utils tests benchmarks data
	$(VENV)/bin/ruff format --check course_utils tests benchmarks data
	$(PY) -m pytest --durations=25

## make test-fast: the inner loop, everything but the tests marked notebooks or load (make test runs all)
test-fast: kernel redis-deps browser-deps
	$(PY) -m pytest -m "not notebooks and not load"

## make release: regenerate notebooks/ from solutions/ (and normalise solution metadata)
release: $(STAMP)
	$(PY) -m course_utils.authoring release

## make normalize: undo what JupyterLab autosave did to tracked notebooks, then release
# Solutions whose code is unchanged get their committed outputs back; edited ones are re-executed
# at the CI time scale (what nbval expects); notebooks/ is regenerated.
normalize: kernel
	$(PY) -m course_utils.authoring.autosave
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

# apt-get as root under one machine-wide lock, re-testing inside it: two makes that both find a
# package missing (`make test` beside `make test-browser` on a fresh machine) install it once, and
# neither dies on dpkg's lock. $(1): the binary that proves it is installed; $(2): the packages.
APT_LOCK := /tmp/.production-ai-patterns-apt.lock
apt_install = flock $(APT_LOCK) sh -c 'test -x "$(1)" || { apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; }'

# A real Redis server for lessons 07 and 08 (limiters, budgets, the event bus): Debian's redis-server,
# security-maintained by Debian. Tests start their own private server from it; REDIS_URL overrides.
redis-deps:
	@test -n "$$REDIS_URL" || test -x "$(REDIS_SERVER)" || { \
	  if [ "$$(id -u)" -eq 0 ]; then $(call apt_install,$(REDIS_SERVER),redis-server); \
	  else echo "install Redis first: sudo apt-get install -y redis-server (or set REDIS_URL)" >&2; exit 1; fi; }

# Debian's Chromium (Playwright cannot download its own browser offline); CI runs as root.
browser-deps:
	@test -x "$(CHROMIUM)" || { \
	  if [ "$$(id -u)" -eq 0 ]; then $(call apt_install,$(CHROMIUM),chromium chromium-driver); \
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
