"""Checks of a demo folder's pages: the index.html `chat-demo` writes there
(classroom/page.py) and the report folders it links, read with the
standard library's HTML parser."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    """One HTML file: the pictures it shows, the links it has, its text."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        at = dict(attrs)
        if tag == "img" and at.get("src"):
            self.images.append(at["src"])
        if tag == "a" and at.get("href"):
            self.links.append(at["href"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_index_shows_every_picture(out: Path, lines: list[str]) -> Page:
    """`out`/index.html shows `lines` and every picture of `out`; every
    picture in a folder below is shown by that folder's index.html, which
    the top page links; every picture a page shows exists. Returns the top
    page."""
    top = Page(out / "index.html")
    text = " ".join(" ".join(top.text).split())
    for line in lines:
        assert " ".join(line.split()) in text, line
    pages = {out: top}
    for png in sorted(out.rglob("*.png")):
        folder = png.parent
        if folder not in pages:
            assert (folder / "index.html").exists(), f"no index.html beside {png}"
            pages[folder] = Page(folder / "index.html")
            link = (folder / "index.html").relative_to(out).as_posix()
            assert link in top.links, f"{out / 'index.html'} does not link {link}"
        assert png.name in pages[folder].images, f"{folder / 'index.html'} does not show {png}"
    for folder, page in pages.items():
        for src in page.images:
            assert (folder / src).is_file(), f"{folder / 'index.html'} shows a missing {src}"
    return top
