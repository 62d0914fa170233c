"""The classroom notebooks: each runs top to bottom headless (nbclient, a
real ipykernel, matplotlib Agg) against real servers it starts itself and
shows every figure it draws, and each is committed without outputs so diffs
stay readable."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
#: Each notebook of the course, with how many figures it draws: one per
#: plotting cell (two of 03's six only once its run found the deadlock,
#: which it needs a few of its TIMEOUT seconds for).
FIGURES = {
    "01-tour": 3,
    "02-global-vs-fine-locks": 3,
    "03-lock-order-and-deadlock": 6,
    "04-backpressure-and-slow-consumers": 4,
    "05-threads-vs-reactor": 3,
    "06-what-if": 2,
}


def test_every_notebook_of_the_course_is_there():
    assert [p.stem for p in NOTEBOOKS] == list(FIGURES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: strip outputs before committing"
            )
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown", "a notebook opens with its introduction"
    assert any("Questions" in c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_shows_its_figures(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    pictures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})
    ]
    assert len(pictures) >= FIGURES[path.stem], (
        f"{path.name} showed {len(pictures)} of its {FIGURES[path.stem]} figures: "
        "a figure drawn under MPLBACKEND=Agg is shown only with `%matplotlib inline`"
    )
