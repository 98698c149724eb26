"""Docs that exist: the repository cites only itself.

Checked over every tracked text file (``git ls-files``; files with a NUL byte or that are not
UTF-8 are skipped as binary data):

* no file names a path outside the repository (the machine-local folders the reference notes
  once lived in): the project's own versions are in ``docs/``;
* every ``docs/<name>.md`` a file names exists (``../../docs/x.md`` and Markdown links are
  resolved from the citing file);
* every section citation (the section sign followed by a number, ``N``, ``N.M`` or a range
  ``N-M``) points at a heading ``## N. …`` (or ``### N.M …``) of the doc it cites. A citation
  cites the nearest ``*.md`` named before it in the same paragraph (a comment block or docstring
  paragraph counts as one); inside ``docs/`` it cites the doc named before it on the same line,
  else the doc it is in. A citation with no doc before it, or after a name that is not in
  ``docs/``, fails: name the doc;
* in ``docs/*.md``, every backticked repository path (``src/…``, ``tests/…``, ``bench/…``,
  ``scripts/…``, ``manifests/…``, ``vault/…``, ``docs/…``) exists, a ``file.py::test_name``
  names a test defined in that file, and a backticked ``test_…`` name is a test function
  somewhere, so the contract docs keep naming the files that implement and test them.

No binary, no network: plain file reads, well under a second.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SELF = pathlib.Path(__file__).resolve().relative_to(ROOT).as_posix()

# This file spells out the forbidden paths and example citations, so it is the one file the
# checks skip.
OUTSIDE = ("/work/", "../shared", "shared/docs", "shared/testdata")

SECTION = "\u00a7"
CITATION_RE = re.compile(SECTION + r"\s*(\d+(?:\.\d+)*)(?:\s*[\u2013-]\s*(\d+(?:\.\d+)*))?")
# A name ending in .md, not inside a longer path-like word; URLs are dropped in `mentions`.
MD_RE = re.compile(r"(?<![\w/.-])([\w./-]*[\w-]\.md)\b")
HEADING_RE = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)
MD_LINK_RE = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
REPO_PATH_RE = re.compile(
    r"`((?:src|tests|bench|scripts|manifests|vault|docs)/[^`\s]*?)(?:::(\w+))?`")
# A line with nothing but comment punctuation ends a paragraph, like an empty line.
BLANK_RE = re.compile(r"^\s*(?://[!/]?|#+|\*|--|;+|\"\"\"|''')?\s*$")


def tracked_text_files() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    files = {}
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():
            continue        # deleted in the work tree, or a submodule
        raw = path.read_bytes()
        if b"\0" in raw:
            continue
        try:
            files[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files


FILES = tracked_text_files()


# Every test function of the repository (pytest `def test_…`, Rust `fn …` under #[test]).
TEST_NAMES = {m.group(1) for name, text in FILES.items() if name.endswith((".py", ".rs"))
              for m in re.finditer(r"^\s*(?:async\s+)?(?:def|fn)\s+(test_\w+|\w+)\s*\(",
                                   text, re.M)}


def scanned() -> list[tuple[str, str]]:
    return [(name, text) for name, text in FILES.items() if name != SELF]


def resolve(citing: str, token: str) -> str | None:
    """The repository path a token names (``None`` if it leaves the repository)."""
    base = pathlib.PurePosixPath(citing).parent
    if token.startswith(("./", "../")):
        parts: list[str] = list(base.parts)
    elif "/" not in token and citing.startswith("docs/"):
        parts = ["docs"]            # a bare name inside docs/ is a sibling
    else:
        parts = []
    for part in token.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


@dataclass
class Mention:
    offset: int
    target: str | None      # repository path, None if outside


def mentions(name: str, text: str) -> list[Mention]:
    found = []
    for m in MD_RE.finditer(text):
        token = m.group(1)
        if token.startswith("/") or text[max(0, m.start() - 1):m.start()] == ":":
            continue        # an absolute path or a URL: not a repository doc
        found.append(Mention(m.start(), resolve(name, token)))
    return found


def sections(doc: str) -> set[str]:
    return set(HEADING_RE.findall(FILES.get(doc) or (ROOT / doc).read_text()))


def cited_sections(first: str, last: str | None) -> list[str]:
    if last is None:
        return [first]
    if first.isdigit() and last.isdigit() and int(first) < int(last):
        return [str(n) for n in range(int(first), int(last) + 1)]
    return [first, last]


def paragraph_start(text: str, offset: int) -> int:
    """Offset of the first line of the paragraph holding `offset`."""
    line_start = text.rfind("\n", 0, offset) + 1
    while line_start > 0:
        prev = text.rfind("\n", 0, line_start - 1) + 1
        if BLANK_RE.match(text[prev:line_start - 1]):
            break
        line_start = prev
    return line_start


def line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def where(name: str, text: str, offset: int) -> str:
    return f"{name}:{text.count(chr(10), 0, offset) + 1}"


def test_the_scan_sees_the_repository():
    """Guards the checks below against passing on nothing."""
    assert "README.md" in FILES and "src/main.rs" in FILES and SELF in FILES
    assert not any(n.endswith(".der") for n in FILES), "binary files are skipped"


def test_no_path_outside_the_repository():
    bad = []
    for name, text in scanned():
        for needle in OUTSIDE:
            for m in re.finditer(re.escape(needle), text):
                line = text[line_start(text, m.start()):].split("\n", 1)[0].strip()
                bad.append(f"{where(name, text, m.start())}: {line[:120]}")
    assert not bad, ("paths outside the repository (cite docs/*.md instead; say where data came "
                     "from in words):\n" + "\n".join(bad))


def test_cited_docs_exist():
    bad = []
    for name, text in scanned():
        for mention in mentions(name, text):
            t = mention.target
            if t is not None and t.startswith("docs/") and t.count("/") == 1 \
                    and not (ROOT / t).is_file():
                bad.append(f"{where(name, text, mention.offset)}: {t} does not exist")
    assert not bad, "\n".join(bad)


def test_markdown_links_resolve():
    bad = []
    for name, text in scanned():
        if not name.endswith(".md"):
            continue
        for m in MD_LINK_RE.finditer(text):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue    # https:, mailto:
            path = resolve(name, target if target.startswith(("./", "../")) else "./" + target)
            if path is None or not (ROOT / path).exists():
                bad.append(f"{where(name, text, m.start())}: link to {target} leads nowhere")
    assert not bad, "\n".join(bad)


def test_section_citations_point_at_existing_sections():
    bad = []
    checked = 0
    for name, text in scanned():
        found = mentions(name, text)
        in_docs = name.startswith("docs/") and name.endswith(".md")
        for m in CITATION_RE.finditer(text):
            start = line_start(text, m.start()) if in_docs else paragraph_start(text, m.start())
            before = [x for x in found if start <= x.offset < m.start()]
            if before:
                doc = before[-1].target
            elif in_docs:
                doc = name
            else:
                bad.append(f"{where(name, text, m.start())}: {m.group(0)} names no doc before it "
                           "in its paragraph; write docs/<name>.md " + m.group(0))
                continue
            if doc is None or not (doc.startswith("docs/") and doc.count("/") == 1):
                bad.append(f"{where(name, text, m.start())}: {m.group(0)} cites {doc}, which is "
                           "not a doc in docs/")
                continue
            if not (ROOT / doc).is_file():
                continue    # reported by test_cited_docs_exist
            have = sections(doc)
            for section in cited_sections(m.group(1), m.group(2)):
                checked += 1
                if section not in have:
                    bad.append(f"{where(name, text, m.start())}: {doc} has no section "
                               f"{section} (it has {', '.join(sorted(have)) or 'none'})")
    assert not bad, "\n".join(bad)
    assert checked > 0


def test_docs_name_files_that_exist():
    bad = []
    for name, text in scanned():
        if not (name.startswith("docs/") and name.endswith(".md")):
            continue
        for m in REPO_PATH_RE.finditer(text):
            path, test = m.group(1), m.group(2)
            if any(c in path for c in "*<>{}|…"):
                continue    # a pattern, not a path
            file = ROOT / path.rstrip("/")
            if not file.exists():
                bad.append(f"{where(name, text, m.start())}: {path} does not exist")
            elif test and not re.search(rf"^\s*(?:async\s+)?def {test}\(", file.read_text(),
                                        re.M):
                bad.append(f"{where(name, text, m.start())}: {path} defines no {test}")
        for m in re.finditer(r"`(test_\w+)`", text):
            if m.group(1) not in TEST_NAMES:
                bad.append(f"{where(name, text, m.start())}: no test is named {m.group(1)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("text, ok", [
    ("see `docs/a.md` \u00a72", True),
    ("see `docs/a.md` \u00a79", False),
    ("see `docs/a.md` \u00a71.1 and \u00a72\u20133", True),
    ("see `docs/a.md`\n//! \u00a72", True),
    ("see `docs/a.md`\n//!\n//! \u00a72", False),    # another paragraph: no doc named
    ("see `README.md` \u00a72", False),
])
def test_the_citation_rules_catch_what_they_should(text, ok, monkeypatch):
    """The section check fails on a wrong or orphan citation (so it can fail at all)."""
    doc = "## 1. One\n### 1.1 Sub\n## 2. Two\n## 3. Three\n"
    monkeypatch.setitem(FILES, "docs/a.md", doc)
    monkeypatch.setattr("pathlib.Path.is_file", lambda p: True)
    for name in [n for n in FILES if n != "docs/a.md"]:
        monkeypatch.delitem(FILES, name)
    monkeypatch.setitem(FILES, "src/x.rs", text)
    if ok:
        test_section_citations_point_at_existing_sections()
    else:
        with pytest.raises(AssertionError):
            test_section_citations_point_at_existing_sections()
