"""The index.html of a demo's folder (classroom/page.py), on a folder of
empty files: what it shows, in which order, and what it links."""

from __future__ import annotations

from classroom.page import write_index
from classroom.result import RunResult
from tests.classroom.pages import Page, assert_index_shows_every_picture


def test_index_shows_captioned_pictures_then_every_other_and_links_the_report(tmp_path):
    for name in ("b.png", "a.png", "extra.png", "run.jsonl", "summary.json", "run.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "report").mkdir()
    result = RunResult(
        "demo", tmp_path, tmp_path / "run.jsonl", tmp_path / "report", {},
        ("one <line>", "two", "three"), (("b.png", "B & its caption"), ("a.png", "A")),
        (("A table", "x  1\ny  2\n"), ("Nothing logged", "")),
    )  # fmt: skip
    index = write_index(result, "What the demo does.")
    assert index == tmp_path / "index.html"
    page = Page(index)
    assert page.images == ["b.png", "a.png", "extra.png"]  # captioned in order, then the rest
    assert page.links == ["report/index.html", "run.jsonl", "summary.json"]  # no database
    text = "".join(page.text)
    assert "What the demo does." in text and "one <line>" in text and "B & its caption" in text
    assert "x  1\ny  2" in text and "(nothing)" in text
    assert_index_shows_every_picture(tmp_path, list(result.lines))
