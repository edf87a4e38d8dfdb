"""The documentation holds together in a fresh clone: its relative links resolve, and nothing points
outside the repository at the build machines' private design notes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_CARD = REPO / "models" / "pet-unet" / "README.md"
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), MODEL_CARD])
# Spelled in two parts so that this file does not mention it itself.
OUTSIDE_DESIGN_NOTES = "../shared" + "/docs"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows) or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(markdown: str) -> str:
    """The text with code blocks and inline code removed: links inside code are examples, not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


def relative_links(page: Path) -> list[str]:
    targets = _LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists() or REPO not in (resolved, *resolved.parents):
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.relative_to(REPO)})")
    assert not broken, f"{page.relative_to(REPO)} has broken links: {broken}"


def test_the_docs_pages_are_all_linked_from_the_readme() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(REPO / "README.md")}
    orphans = [p.name for p in (REPO / "docs").glob("*.md") if p.resolve() not in linked]
    assert not orphans, f"docs pages nobody can find from the README: {orphans}"


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [here](missing.md) and [there](#title), not `[code](x.md)`.\n")
    assert relative_links(page) == ["missing.md", "#title"]
    assert anchors(page) == {"title"}


IN_GIT_CHECKOUT = shutil.which("git") is not None and (REPO / ".git").exists()


@pytest.mark.skipif(not IN_GIT_CHECKOUT, reason="needs a git checkout")
def test_no_tracked_file_points_at_the_design_notes_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = [REPO / name.decode() for name in tracked if name]
    needle = OUTSIDE_DESIGN_NOTES.encode()
    mentions = [str(f.relative_to(REPO)) for f in files if f.is_file() and needle in f.read_bytes()]
    assert not mentions, f"these send readers to {OUTSIDE_DESIGN_NOTES}, which a clone lacks: {mentions}"
