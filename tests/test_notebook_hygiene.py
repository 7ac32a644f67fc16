"""Static hygiene of every notebook in solutions/ and notebooks/ (no kernel needed)."""

from __future__ import annotations

import ast
import re

import pytest

from _notebooks import ALL, SOLUTIONS, STUDENTS, output_text, params, read

pytestmark = pytest.mark.notebooks

MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|[A-Za-z]:\\\\?Users)")
API_KEY = re.compile(r"sk-ant-")
ASYNCIO_RUN = re.compile(r"\basyncio\.run\(")
# A cell that draws: pyplot calls other than configuration, or a DataFrame/Series .plot(...).
PLOTS = re.compile(r"\bplt\.(?!style\b|rcParams\b|rc\b|close\b|ioff\b|ion\b|switch_backend\b)\w+\(|\.plot(\.\w+)?\(")


@pytest.mark.parametrize("path", params(ALL))
def test_kernelspec_and_language_info(path):
    nb = read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3 (make release)"
    assert nb.metadata.get("language_info", {}).get("name") == "python", "language_info missing (make release)"


@pytest.mark.parametrize("path", params(STUDENTS))
def test_student_notebooks_are_clean(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"cell {index} has outputs"
            assert cell.execution_count is None, f"cell {index} has an execution count"
        assert "BEGIN SOLUTION" not in cell.source, f"cell {index} still has a solution marker"


@pytest.mark.parametrize("path", params(SOLUTIONS))
def test_solutions_ran_top_to_bottom_without_errors(path):
    code = [c for c in read(path).cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"execution counts {counts}: Restart & Run All before committing (python -m course_utils.authoring execute NN)"
    )
    for index, cell in enumerate(code):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"code cell {index} stored an error: {errors[0].get('ename')}: {errors[0].get('evalue')}"


@pytest.mark.parametrize("path", params(ALL))
def test_no_api_keys(path):
    assert not API_KEY.search(path.read_text(encoding="utf-8")), "an Anthropic API key (sk-ant-...) is in the notebook"


@pytest.mark.parametrize("path", params(ALL))
def test_no_machine_paths_in_outputs(path):
    for index, cell in enumerate(read(path).cells):
        for output in cell.get("outputs", []):
            hit = MACHINE_PATH.search(output_text(output))
            assert not hit, f"cell {index} output shows a machine path ({hit.group(0)}...)"


@pytest.mark.parametrize("path", params(ALL))
def test_no_asyncio_run(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert not ASYNCIO_RUN.search(cell.source), (
                f"cell {index} calls asyncio.run(): the kernel already runs a loop, use top-level await"
            )


@pytest.mark.parametrize("path", params(ALL))
def test_parameters_cell(path):
    cells = [c for c in read(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged `parameters`"
    tree = ast.parse(cells[0].source)
    names = {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    missing = {"provider", "seed", "time_scale"} - names
    assert not missing, f"the parameters cell does not define {sorted(missing)}"


@pytest.mark.parametrize("path", params(SOLUTIONS))
def test_plots_are_rendered(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code" and PLOTS.search(cell.source):
            mimes = {m for o in cell.outputs for m in o.get("data", {})}
            assert "image/png" in mimes, f"cell {index} plots but stored no image/png output"


def test_every_student_notebook_has_a_solution():
    assert STUDENTS, "no student notebooks in notebooks/"
    sources = {p.name for p in SOLUTIONS}
    orphans = [p.name for p in STUDENTS if p.name not in sources]
    assert not orphans, f"notebooks without a source in solutions/: {orphans}"
