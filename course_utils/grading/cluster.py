"""Grading on Dask distributed: one code path from a laptop to a cluster.

By default the grader starts a :class:`distributed.LocalCluster` inside the command (worker
*processes*, each with its own threads); with ``--scheduler tcp://host:8786`` it uses a running
cluster instead — workers started with ``dask worker``, dask-jobqueue (SLURM, PBS) or
dask-kubernetes, each with the course environment installed. Either way the same things happen:

* a :class:`WarmKernelsPlugin` starts one kernel zygote per worker (:mod:`.warm`), registered on
  the scheduler so workers that join later get one too; it preloads what the official notebooks
  and check modules of the lessons at hand import (:func:`.warm.preload_for`);
* each submission is one task, :func:`grade_job`, carrying the submission's bytes (workers need
  no shared file system for submissions); the worker grades it exactly as before — its own worker
  process, kernel and simulator, under the same limits — and returns the grade and the executed
  notebook;
* a worker that dies mid-submission (killed, out of memory, node lost) is noticed by the
  scheduler, which gives its tasks to another worker: Dask's own recovery, no home-made one.
  A submission whose workers keep dying (Dask's ``allowed-failures``) comes back as a grader
  error with the reason instead of stopping the batch.

The official notebooks and check modules come from each worker's own installation of the course
(or the ``--solutions`` / ``--checks-dir`` paths, which must then exist on the workers too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .discover import Submission, load_notebook
from .execute import ExecSettings, child_env
from .grade import GradeOptions, SubmissionGrade, default_solutions, extend_checks_path, grade_submission
from .lessons import available_lessons
from .warm import WarmKernels, preload_for

from distributed import WorkerPlugin

__all__ = ["GradeJob", "GradeOutcome", "WarmKernelsPlugin", "grade_job", "dask_client", "run_jobs", "dashboard"]

PLUGIN_NAME = "course-grader-warm-kernels"


@dataclass
class GradeJob:
    """One submission to grade, self-contained: it travels to whichever worker runs it."""

    name: str
    filename: str
    data: bytes
    options: GradeOptions  # solutions None: the worker's own course checkout


@dataclass
class GradeOutcome:
    """What a worker sends back: the grade and the executed notebook's text."""

    grade: SubmissionGrade
    executed: str | None
    worker: str = ""


class WarmKernelsPlugin(WorkerPlugin):
    """A Dask worker plugin: a kernel zygote (:class:`.warm.WarmKernels`) for the worker's lifetime."""

    name = PLUGIN_NAME

    def __init__(self, settings: ExecSettings, solutions: list[Path] | None = None) -> None:
        self.settings = settings
        self.solutions = solutions  # None or empty: the worker's own course checkout
        self._warm: WarmKernels | None = None

    def setup(self, worker: object) -> None:
        try:
            preload = preload_for(_kernel_sources(self.solutions or default_solutions(), self.settings.checks_dirs))
        except Exception:  # unreadable notebooks: they will be graded as such; preload everything
            preload = None
        self._warm = WarmKernels(child_env(self.settings), preload=preload).__enter__()

    def teardown(self, worker: object) -> None:
        if self._warm is not None:
            self._warm.__exit__(None, None, None)
            self._warm = None

    def apply(self, settings: ExecSettings) -> ExecSettings:
        """``settings`` whose kernel is forked from this worker's zygote."""
        if self._warm is None:
            return settings
        env = dict(settings.env)
        env["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (self._warm.jupyter_path, env.get("JUPYTER_PATH") or os.environ.get("JUPYTER_PATH")) if p
        )
        return dataclasses.replace(settings, kernel=self._warm.kernel_name, env=env)


def _kernel_sources(solutions: list[Path], checks_dirs: list[Path]) -> list[str]:
    """The code graded kernels run: the official notebooks' code cells and their check modules."""
    import course_utils.checks as checks

    roots = [*map(Path, checks.__path__), *checks_dirs]
    sources: list[str] = []
    for lesson, path in sorted(available_lessons(solutions).items()):
        nb, problem = load_notebook(path)
        if nb is None:
            raise ValueError(f"{path}: {problem}")
        sources += [cell.source for cell in nb.cells if cell.cell_type == "code"]
        for root in roots:
            module = root / f"lesson{lesson:02d}"
            files = [module.with_suffix(".py"), *sorted(module.glob("**/*.py"))]
            sources += [f.read_text(encoding="utf-8") for f in files if f.is_file()]
    return sources


def _worker_plugin() -> WarmKernelsPlugin | None:
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(PLUGIN_NAME)
    except (ImportError, ValueError):  # not on a Dask worker (a direct call)
        return None
    return plugin if isinstance(plugin, WarmKernelsPlugin) else None


def grade_job(job: GradeJob) -> GradeOutcome:
    """Grade one submission on this worker (the Dask task). Never raises for a bad submission."""
    plugin = _worker_plugin()
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        where = "local"
    opts = job.options
    for p in reversed(opts.settings.pythonpath):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))  # the parent lists exercises too when a notebook never reaches a kernel
    extend_checks_path(opts.settings.checks_dirs)
    solutions = opts.solutions or default_solutions()
    settings = dataclasses.replace(opts.settings, cwd=opts.settings.cwd or solutions[0])
    if plugin is not None:
        settings = plugin.apply(settings)
    with tempfile.TemporaryDirectory(prefix="grade-job-") as tmp:
        root = Path(tmp)
        path = root / "in" / job.filename
        path.parent.mkdir(parents=True)
        path.write_bytes(job.data)
        nb, problem = load_notebook(path)
        options = dataclasses.replace(opts, solutions=solutions, out_dir=root / "out", settings=settings, jobs=1)
        grade = grade_submission(Submission(path, job.name, nb, problem), options, root / "work")
        if opts.keep_work and (root / "work").is_dir():  # for debugging the grader: on the worker's machine
            import shutil

            shutil.copytree(root / "work", Path(opts.out_dir) / "work" / job.name, dirs_exist_ok=True)
        executed = None
        if grade.executed and Path(grade.executed).is_file():
            executed = Path(grade.executed).read_text(encoding="utf-8")
        grade.executed = None
    return GradeOutcome(grade, executed, where)


def _lost(job: GradeJob, exc: BaseException) -> GradeOutcome:
    """A submission the cluster could not grade (its workers kept dying): a grader error, with why."""
    grade = SubmissionGrade(name=job.name, file=job.filename, status="grader error")
    kind = type(exc).__name__
    if kind == "KilledWorker":
        why = "every worker that tried to grade it died (Dask gave up after its allowed failures)"
    else:
        why = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    grade.problems.append(
        f"The grading cluster could not grade this submission: {why}. Run the grader again to retry it."
    )
    return GradeOutcome(grade, None, "")


def has_dashboard_deps() -> bool:
    """Dask's dashboard needs Bokeh; without it the dashboard is not started."""
    return importlib.util.find_spec("bokeh") is not None


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int = 1, jobs: int = 1) -> Iterator[object]:
    """A Dask client: on the running cluster at ``scheduler``, else on a :class:`LocalCluster`
    of ``workers`` processes with ``jobs`` threads (submissions at a time) each, on loopback."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="60s") as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=jobs,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=":0",  # a free port: 8787 may be another user's on a shared machine
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def dashboard(client: object) -> str | None:
    """The dashboard's address, where the scheduler runs one and its dependencies are here."""
    if not has_dashboard_deps():
        return None
    try:
        info = client.scheduler_info()  # type: ignore[attr-defined]
        if "dashboard" not in (info.get("services") or {}):
            return None
        return client.dashboard_link  # type: ignore[attr-defined]
    except Exception:
        return None


def run_jobs(
    client: object,
    jobs: list[GradeJob],
    keys: list[str],
    on_outcome: Callable[[GradeJob, GradeOutcome], None],
    warm: ExecSettings | None,
) -> None:
    """Grade ``jobs`` on the cluster; ``on_outcome`` gets each result once, as it arrives.

    ``warm``: the settings to start each worker's kernel zygote with (``None``: cold kernels).
    """
    from distributed import as_completed

    registered = False
    if warm is not None and jobs:
        plugin = WarmKernelsPlugin(warm, jobs[0].options.solutions)  # every job has the batch's options
        client.register_plugin(plugin, name=PLUGIN_NAME)  # type: ignore[attr-defined]
        registered = True
    futures = {}
    try:
        for job, key in zip(jobs, keys):
            fut = client.submit(grade_job, job, key=key, pure=False)  # type: ignore[attr-defined]
            futures[fut] = job
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # KilledWorker, a task that could not be deserialised, ...
                outcome = _lost(job, exc)
            on_outcome(job, outcome)
    finally:
        for fut in futures:
            fut.cancel()
        if registered:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(PLUGIN_NAME)  # type: ignore[attr-defined]
