"""Every link in the repository's Markdown stays inside the repository and leads somewhere.

A relative link must name a file or folder of this checkout (not one git ignores), and its
``#anchor``, if any, a heading of the Markdown file it names (GitHub's heading ids). A link with a
scheme (``https:``, ``mailto:``, ...) or a protocol-relative ``//host`` is refused: the docs stand
alone. Code (fenced blocks and inline spans) is not prose, so a ``curl http://localhost:8788``
example is no link; a bare ``https://...`` in prose is one (GitHub renders it as a link).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where Markdown is looked for when this is not a git checkout.
NOT_SOURCES = {".git", ".venv", ".cache", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](target "title") and ![alt](target); the target may be <wrapped>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
# [label]: target
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
AUTOLINK = re.compile(r"<((?:[A-Za-z][A-Za-z0-9+.-]{1,31}:|//)[^>\s]*)>")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
BARE_URL = re.compile(r"(?<![\w/(<\"'])(?:https?|ftp)://[^\s)>\]]+|(?<![\w@/])www\.[A-Za-z0-9-]+\.[^\s)>\]]+")
SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}: {self.target}"


def markdown_files() -> list[Path]:
    """The Markdown files of the checkout: tracked, or new and not ignored."""
    if shutil.which("git") is not None and (ROOT / ".git").exists():
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        found = {ROOT / name for name in listing.split("\0") if name}
        return sorted(path for path in found if path.is_file())
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not NOT_SOURCES.intersection(path.relative_to(ROOT).parts) and "egg-info" not in str(path)
    )


def prose_lines(text: str, *, blank_code: bool = True) -> list[tuple[int, str]]:
    """The lines outside code blocks, numbered from 1, HTML comments blanked, and inline code too
    unless ``blank_code`` is false."""
    text = HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        if line.startswith(("    ", "\t")) and (not lines or not lines[-1][1].strip()):
            continue  # an indented code block (after a blank line)
        lines.append((number, INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line))
    return lines


def links_in(path: Path) -> list[Link]:
    found: list[Link] = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        targets += [m.group(1) for m in REFERENCE.finditer(line)]
        targets += [m.group(1) for m in AUTOLINK.finditer(line)]
        targets += [m.group(1) for m in HTML_LINK.finditer(line)]
        without_links = INLINE_LINK.sub(" ", AUTOLINK.sub(" ", line))
        targets += [m.group(0) for m in BARE_URL.finditer(without_links)]
        found += [Link(path, number, target.strip("<>")) for target in targets]
    return found


def all_links() -> list[Link]:
    return [link for path in markdown_files() for link in links_in(path)]


def heading_ids(text: str) -> set[str]:
    """GitHub's ids for the headings of a Markdown text (lowercase, punctuation dropped, -N for repeats)."""
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text, blank_code=False):
        match = HEADING.match(line)
        if match is None:
            continue
        title = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), match.group(2))
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link's text stays
        title = re.sub(r"<[^>]+>", "", title)
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


@cache
def headings_of(path: Path) -> frozenset[str]:
    return frozenset(heading_ids(path.read_text(encoding="utf-8")))


def ignored_by_git(path: Path) -> bool:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return False
    result = subprocess.run(  # noqa: S603 (git, on a path of this checkout)
        ["git", "check-ignore", "-q", "--", str(path)],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def problem(link: Link) -> str | None:
    """Why ``link`` is refused, or None when it is fine."""
    target = link.target
    if SCHEME.match(target) or target.startswith("www."):
        return "leaves the repository (the docs link only to the repository's own files)"
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if not path_part:
        destination = link.source
    elif path_part.startswith("/"):
        destination = (ROOT / path_part.lstrip("/")).resolve()
    else:
        destination = (link.source.parent / path_part).resolve()
    if destination != ROOT and ROOT not in destination.parents:
        return "points outside the repository"
    if not destination.exists():
        return f"{destination.relative_to(ROOT)} does not exist"
    if ignored_by_git(destination):
        return f"{destination.relative_to(ROOT)} is ignored by git (it is not in the repository)"
    if anchor:
        if destination.suffix != ".md" or not destination.is_file():
            return f"#{anchor} on {destination.relative_to(ROOT)}, which has no Markdown headings"
        if unquote(anchor).lower() not in headings_of(destination):
            return f"{destination.relative_to(ROOT)} has no heading #{anchor}"
    return None


def test_there_is_markdown_to_check() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/api.md", "docs/architecture.md"} <= names


def test_every_link_stays_in_the_repository_and_resolves() -> None:
    broken = [f"{link}: {reason}" for link in all_links() if (reason := problem(link)) is not None]
    assert not broken, "\n".join(broken)


# --- the checker itself ---------------------------------------------------------------------------


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A Markdown file inside the repository's tree would be checked for real; this one is parsed only."""
    return tmp_path / "page.md"


def parsed_targets(page: Path, text: str) -> list[str]:
    page.write_text(text, encoding="utf-8")
    return [link.target for link in links_in(page)]


def test_links_are_found_in_prose_and_not_in_code(page: Path) -> None:
    text = """# Title

See [the API](docs/api.md#errors), ![a picture](img/a.png) and <https://example.org>.
Also https://example.net/page and www.example.com in prose.

[ref]: docs/gateway.md

`[not a link](nowhere.md)` and `curl http://localhost:8788`

```bash
curl http://localhost:8788/v1/workflows  # [nor this](x.md)
```
"""
    assert parsed_targets(page, text) == [
        "docs/api.md#errors",
        "img/a.png",
        "https://example.org",
        "https://example.net/page",
        "www.example.com",
        "docs/gateway.md",
    ]


@pytest.mark.parametrize(
    ("target", "refused"),
    [
        ("https://github.com/some/project", "leaves the repository"),
        ("http://example.org", "leaves the repository"),
        ("mailto:someone@example.org", "leaves the repository"),
        ("//example.org/x", "leaves the repository"),
        ("../../../../etc/passwd", "outside the repository"),
        ("docs/no-such-page.md", "does not exist"),
        ("docs/api.md#no-such-heading", "has no heading"),
        ("README.md", None),
        ("docs/", None),
    ],
)
def test_what_is_refused(target: str, refused: str | None) -> None:
    reason = problem(Link(ROOT / "README.md", 1, target))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


def test_heading_ids_follow_githubs_rule() -> None:
    text = (
        "# The API\n## Layout (`operator/tts_operator/`)\n## Errors\n## Errors\n## 错误代码 (error codes)\n"
    )
    ids = heading_ids(text)
    assert ids == {"the-api", "layout-operatortts_operator", "errors", "errors-1", "错误代码-error-codes"}
