"""The authoring pipeline: solution markers -> student stubs, metadata normalisation, release/check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.authoring import normalize_metadata, release, stale
from course_utils.authoring.__main__ import main
from course_utils.authoring.generate import ROOT
from course_utils.notebook_format import KERNELSPEC, MarkerError, strip_code, strip_markdown

SOLUTION_CELL = '''def sliding_window(turns, budget):
    """Keep the newest turns that fit in ``budget`` tokens."""
    kept = []
    ### BEGIN SOLUTION 1.2 hint="Walk the turns newest first and stop at the budget."
    for turn in reversed(turns):
        if budget <= 0:
            break
        kept.insert(0, turn)
        budget -= 1
    ### END SOLUTION
    return kept'''


def test_stub_keeps_signature_docstring_and_indentation():
    source, blocks = strip_code(SOLUTION_CELL, "01_x.ipynb, cell 3")
    assert (
        source
        == '''def sliding_window(turns, budget):
    """Keep the newest turns that fit in ``budget`` tokens."""
    kept = []
    raise NotImplementedError("Exercise 1.2: Walk the turns newest first and stop at the budget.")
    return kept'''
    )
    assert [b.exercise for b in blocks] == ["1.2"]
    compile(source, "<stub>", "exec")  # still valid Python


def test_nested_indentation_and_several_blocks():
    source = (
        "class Store:\n"
        "    def get(self, key):\n"
        "        ### BEGIN SOLUTION 8.1\n"
        "        return self.data[key]\n"
        "        ### END SOLUTION\n"
        "\n"
        "    def put(self, key, value):\n"
        "        ### BEGIN SOLUTION 8.2 hint='Store it; \"quotes\" are fine.'\n"
        "        self.data[key] = value\n"
        "        ### END SOLUTION\n"
    )
    out, blocks = strip_code(source, "where")
    assert '        raise NotImplementedError("Exercise 8.1")\n' in out
    assert '        raise NotImplementedError("Exercise 8.2: Store it; \\"quotes\\" are fine.")\n' in out
    assert [b.exercise for b in blocks] == ["8.1", "8.2"]
    namespace: dict = {}
    exec(compile(out, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match='Exercise 8.2: Store it; "quotes" are fine.'):
        namespace["Store"]().put("k", "v")


def test_code_without_markers_is_unchanged():
    assert strip_code("x = 1\nprint(x)", "w") == ("x = 1\nprint(x)", [])


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("def f():\n    ### BEGIN SOLUTION 1.1\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a matching BEGIN"),
        ("def f():\n    ### BEGIN SOLUTION 1.1\n    ### BEGIN SOLUTION 1.2\n", "inside the block"),
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n", "needs an exercise id"),
        ("def f():\n    ### BEGIN SOLUTION 1.1 tip=x\n    ### END SOLUTION\n", "unknown solution marker argument"),
        ("### BEGIN SOLUTION 1.1\nx = 1\n### END SOLUTION\n", "top level"),
    ],
)
def test_bad_code_markers_raise_naming_the_cell(source, fragment):
    with pytest.raises(MarkerError, match=fragment) as info:
        strip_code(source, "03_async.ipynb, cell 7")
    assert "03_async.ipynb, cell 7" in str(info.value)


def test_markdown_solution_text_is_removed():
    source = (
        "Why does it fail?\n\n<!-- BEGIN SOLUTION -->\nBecause the window overflows.\n<!-- END SOLUTION -->\n\nNext."
    )
    assert strip_markdown(source, "w") == "Why does it fail?\n\nNext."
    assert strip_markdown("plain  \n\n\n text", "w") == "plain  \n\n\n text"  # untouched without markers
    with pytest.raises(MarkerError, match="never closed"):
        strip_markdown("<!-- BEGIN SOLUTION -->\nsecret", "02_x.ipynb, cell 4")


def _solution_notebook() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "venv-xyz", "display_name": "My venv", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.9"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        "papermill": {"duration": 3.2, "input_path": "/home/me/x.ipynb"},
    }
    params = new_code_cell("provider = 'simulator'\nseed = 0\ntime_scale = 1.0", execution_count=1)
    params.metadata = {"tags": ["parameters"], "execution": {"iopub.status.busy": "2025-01-01T00:00:00Z"}}
    exercise = new_code_cell(SOLUTION_CELL, execution_count=2)
    exercise.metadata = {"scrolled": True, "ExecuteTime": {"end_time": "2025"}}
    run = new_code_cell("print(sliding_window([1, 2, 3], 2))", execution_count=3)
    run.outputs = [new_output("stream", name="stdout", text="[2, 3]\n")]
    answer = new_markdown_cell("Explain.\n<!-- BEGIN SOLUTION -->\nThe answer.\n<!-- END SOLUTION -->")
    only_solution = new_markdown_cell("<!-- BEGIN SOLUTION -->\nAll of it.\n<!-- END SOLUTION -->")
    nb.cells = [new_markdown_cell("# Lesson 1"), params, exercise, run, answer, only_solution]
    return nb


@pytest.fixture()
def course(tmp_path: Path) -> tuple[Path, Path]:
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nbformat.write(_solution_notebook(), str(solutions / "01_context.ipynb"))
    return solutions, notebooks


def test_release_writes_student_notebook(course):
    solutions, notebooks = course
    changed = release(solutions, notebooks)
    assert {p.name for p in changed} == {"01_context.ipynb"} and len(changed) == 2
    student = nbformat.read(str(notebooks / "01_context.ipynb"), as_version=4)
    sources = [c.source for c in student.cells]
    assert "### BEGIN SOLUTION" not in "\n".join(sources)
    assert 'raise NotImplementedError("Exercise 1.2: Walk the turns newest first' in sources[2]
    assert sources[4] == "Explain."
    assert len(student.cells) == 5  # the all-solution markdown cell is gone
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert student.metadata["kernelspec"] == KERNELSPEC
    assert student.metadata["language_info"]["name"] == "python"
    assert student.metadata["course"] == {"lesson": 1, "slug": "context", "variant": "student"}
    assert student.cells[2].metadata["course"] == {"exercise": "1.2"}
    assert student.cells[1].metadata == {"tags": ["parameters"]}


def test_release_normalises_solution_but_keeps_outputs(course):
    solutions, notebooks = course
    release(solutions, notebooks)
    solution = nbformat.read(str(solutions / "01_context.ipynb"), as_version=4)
    assert set(solution.metadata) == {"kernelspec", "language_info", "course"}
    assert "version" not in solution.metadata["language_info"]
    assert solution.cells[2].metadata == {"course": {"exercise": "1.2"}}
    assert solution.cells[3].outputs[0]["text"] == "[2, 3]\n"
    assert [c.execution_count for c in solution.cells if c.cell_type == "code"] == [1, 2, 3]
    assert "### BEGIN SOLUTION 1.2" in solution.cells[2].source


def test_release_is_idempotent_and_deterministic(course):
    solutions, notebooks = course
    release(solutions, notebooks)
    before = {p: p.read_bytes() for p in [*solutions.glob("*"), *notebooks.glob("*")]}
    assert release(solutions, notebooks) == []
    assert {p: p.read_bytes() for p in before} == before
    assert stale(solutions, notebooks) == []


def test_stale_detection(course):
    solutions, notebooks = course
    assert any("missing" in p for p in stale(solutions, notebooks))
    release(solutions, notebooks)
    nb = nbformat.read(str(solutions / "01_context.ipynb"), as_version=4)
    nb.cells[0].source = "# Lesson 1, revised"
    nbformat.write(nb, str(solutions / "01_context.ipynb"))
    problems = stale(solutions, notebooks)
    assert any("notebooks/01_context.ipynb: out of date" in p for p in problems)
    (notebooks / "09_orphan.ipynb").write_text("{}")
    assert any("09_orphan.ipynb: no source" in p for p in stale(solutions, notebooks))


def test_release_refuses_unbalanced_markers_and_writes_nothing(course):
    solutions, notebooks = course
    nb = _solution_notebook()
    nb.cells[2].source = SOLUTION_CELL.replace("    ### END SOLUTION\n", "")
    nbformat.write(nb, str(solutions / "02_broken.ipynb"))
    with pytest.raises(MarkerError, match=r"02_broken.ipynb, cell 2, line 4: BEGIN SOLUTION 1.2 is never closed"):
        release(solutions, notebooks)
    assert not notebooks.exists() or not list(notebooks.glob("*.ipynb"))


def test_normalize_metadata_drops_machine_specific_fields():
    nb = normalize_metadata(_solution_notebook())
    assert nb.metadata["kernelspec"] == KERNELSPEC
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert nb.cells[1].metadata == {"tags": ["parameters"]}
    assert nb.cells[2].metadata == {}
    assert len({c.id for c in nb.cells}) == len(nb.cells)


def test_cli_release_and_check(course, capsys):
    solutions, notebooks = course
    dirs = ["--solutions", str(solutions), "--notebooks", str(notebooks)]
    assert main([*dirs, "check"]) == 1
    assert "01_context.ipynb" in capsys.readouterr().err
    assert main([*dirs, "release"]) == 0
    assert main([*dirs, "check"]) == 0


def test_repository_notebooks_are_up_to_date():
    """Fails when notebooks/ was not regenerated after editing solutions/ (fix: `make release`)."""
    result = subprocess.run(
        [sys.executable, "-m", "course_utils.authoring", "check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
