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
  somewhere, so the contract docs keep naming the files that implement and test them;
* in every tracked file, a backticked path with a file extension under one of the repository's
  folders (``src/…``, ``tests/…``, ``scripts/…``, ``docs/…``, ``bench/…``, ``charts/…``,
  ``manifests/…``, ``fuzz/…``, ``vault/…``, ``aws/…``; ``vault/x.rs`` and ``aws/x.rs`` may also
  be module paths under ``src/``) exists. A path right after a possessive (``needroleshere's
  `src/sign.rs```) is another project's and is not checked;
* the binary's surface as its ``--help`` states it (``docs/reference.md``, which
  ``tests/test_cli_reference.py`` keeps equal to the binary's ``--help``): in the Markdown files,
  a command line of ours in a code block or a backticked span (``iamra-bootstrap <command> …``,
  or a span that starts with one of our command names, ``serve --imds``) names a command the
  binary has and only flags that command takes (up to the first ``|``, ``;``, ``&&``, ``>`` or
  `` #``); in ``README.md`` and ``docs/``, a span that is a bare flag (```--flag```, ```--flag
  VALUE```) names a flag of some command, or one of the helper's flags we refuse by name
  (``UNSUPPORTED_HELPER_FLAGS`` in ``src/main.rs``), or one of ``FOREIGN_FLAGS`` below; every
  ``IAMRA_*`` name is an option's variable, or a setting the scripts and tests read themselves
  (``IAMRA_BIN``: read through ``os.environ`` or ``$NAME`` in ``tests/``, ``scripts/``, …).
  Another program's flag goes in a span that names the program (```kubectl --context```), or
  in ``FOREIGN_FLAGS`` with the reason.

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
# Any backticked (` or ``) path under a repository folder, ending in a file extension.
SOURCE_PATH_RE = re.compile(
    r"(?<!`)(`{1,2})((?:src|tests|bench|scripts|manifests|vault|docs|charts|aws|fuzz)/"
    r"[^`\s]*\.[A-Za-z0-9]+)(?:::\w+)?\1(?!`)")
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


def test_cited_source_paths_exist():
    """A file renamed or removed leaves no citation behind, in any file (module docs, tests)."""
    bad = []
    checked = 0
    for name, text in scanned():
        for m in SOURCE_PATH_RE.finditer(text):
            path = m.group(2)
            if any(c in path for c in "*<>{}|…$\\") or re.search(r"\w's\s*$", text[:m.start()]):
                continue    # a pattern, an escaped string, or another project's file
            checked += 1
            candidates = [path]
            if path.startswith(("vault/", "aws/")):
                candidates.append("src/" + path)    # a module path (`vault/pki.rs`)
            if not any((ROOT / c).exists() for c in candidates):
                bad.append(f"{where(name, text, m.start())}: {path} does not exist")
    assert not bad, "\n".join(bad)
    assert checked > 100


# ---- the binary's surface: commands, flags and IAMRA_* variables the docs name ------------

REFERENCE = "docs/reference.md"
# Flags of other programs that the docs name in a span of their own (rather than in a span that
# names the program), with why.
FOREIGN_FLAGS = {
    "--pkcs11-pin": "the Roles Anywhere User Guide names it; aws_signing_helper has no such flag",
    "--reuse-latest-expiring-certificate": "the same (User Guide only)",
}
FLAG_RE = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
COMMAND_LINE_RE = re.compile(
    r"(?<![\w/.=:-])iamra-bootstrap(?:[ \t]+([a-z][a-z0-9-]*)(?=[\s`\"']|$)|(?=[ \t]+--))(.*)")
SHELL_BREAK_RE = re.compile(r"\s(?:\||;|&&|\|\||>|2>|#)\s|\$\(|<\(")
BARE_FLAG_RE = re.compile(r"(--[a-z0-9][a-z0-9-]*)(?:\[[a-z-]+\])?(?:[ =].*)?")


@dataclass
class Surface:
    commands: dict[str, set[str]]   # "" = the top level
    variables: set[str]             # the options' IAMRA_* variables
    harness: set[str]               # IAMRA_* settings the scripts and tests read themselves
    refused: set[str]               # the helper's flags refused by name


def surface(files: dict[str, str]) -> Surface:
    reference = files[REFERENCE]
    commands = {}
    for m in re.finditer(r"^## iamra-bootstrap(?: (\S+))?\n(.*?)(?=^## |\Z)", reference,
                         re.M | re.S):
        commands[m.group(1) or ""] = set(
            re.findall(r"^\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", m.group(2), re.M))
    variables = set(re.findall(r"\[env: (IAMRA_\w+?)[=\]]", reference))
    harness = set()
    for name, text in files.items():
        if name.endswith((".py", ".sh")) and not name.startswith("src/") or \
                name.startswith(".ci/"):
            harness |= set(re.findall(
                r"""(?:environ(?:\.get)?\s*[(\[]\s*|getenv\(\s*)["'](IAMRA_\w+)["']""", text))
            harness |= set(re.findall(r"\$\{?(IAMRA_\w+)", text))
    main = files.get("src/main.rs", "")
    at = main.find("UNSUPPORTED_HELPER_FLAGS")
    refused = set(re.findall(r'"(--[a-z0-9-]+)"', main[at:main.find("];", at)])) \
        if at >= 0 else set()
    return Surface(commands, variables, harness - variables, refused)


def code_pieces(text: str):
    """(offset, kind, code): each line of a fenced block (backslash continuations joined) as
    "block", each inline backticked span outside blocks as "span"."""
    offset, fence = 0, None
    pending = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fence = None if fence else stripped[:3]
        elif fence:
            if pending is not None:
                pending = (pending[0], pending[1] + " " + line)
            else:
                pending = (offset, line)
            if not line.endswith("\\"):
                yield pending[0], "block", pending[1]
                pending = None
        else:
            for m in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", line):
                yield offset + m.start(), "span", m.group(2)
        offset += len(line) + 1


def surface_errors(name: str, text: str, s: Surface) -> list[str]:
    bad = []
    bare_flags = name == "README.md" or name.startswith("docs/")
    every_flag = set().union(*s.commands.values())
    for offset, kind, code in code_pieces(text):
        head = SHELL_BREAK_RE.split(code)[0]
        m = COMMAND_LINE_RE.search(head)
        command = rest = None
        if m:
            command, rest = m.group(1) or "", m.group(2)
            if command not in s.commands:
                bad.append(f"{where(name, text, offset)}: `iamra-bootstrap {command}`: the "
                           f"binary has no command {command!r}")
                continue
        elif kind == "span":
            m = re.match(r"\s*([a-z][a-z0-9-]*)\s+(.*)", head)
            if m and m.group(1) in s.commands and m.group(1):
                command, rest = m.group(1), m.group(2)
        if command is not None:
            for flag in FLAG_RE.findall(rest):
                if flag not in s.commands[command] and flag not in s.commands[""]:
                    bad.append(f"{where(name, text, offset)}: `{code.strip()[:80]}`: "
                               f"`iamra-bootstrap {command} --help` has no {flag}")
        elif kind == "span" and bare_flags:
            m = BARE_FLAG_RE.fullmatch(code.strip())
            if m and m.group(1) not in every_flag | s.refused | set(FOREIGN_FLAGS):
                bad.append(f"{where(name, text, offset)}: `{code}`: no command of the binary "
                           f"has {m.group(1)} (another program's flag: name the program in the span, "
                           "`kubectl --context`, or add it to FOREIGN_FLAGS in tests/test_docs.py "
                           "with the reason)")
    for m in re.finditer(r"\bIAMRA_[A-Z0-9_]*[A-Z0-9]\b", text):
        if m.group(0) not in s.variables | s.harness:
            bad.append(f"{where(name, text, m.start())}: {m.group(0)} is no option's variable "
                       "(docs/reference.md) and no setting the scripts or tests read")
    return bad


def surface_docs(files: dict[str, str]) -> list[tuple[str, str]]:
    return [(n, t) for n, t in files.items()
            if n.endswith(".md") and n != REFERENCE and n != SELF]


def test_docs_name_only_what_the_binary_has():
    s = surface(FILES)
    assert len(s.commands) >= 8 and len(s.variables) > 30, "docs/reference.md unreadable?"
    bad = [e for name, text in surface_docs(FILES) for e in surface_errors(name, text, s)]
    assert not bad, ("the docs name what `--help` does not know (fix the doc, or regenerate "
                     "docs/reference.md with scripts/gen-reference.sh):\n" + "\n".join(bad))


def test_the_reference_has_every_command():
    """docs/reference.md has a section for each command the top-level --help lists."""
    s = surface(FILES)
    listed = re.search(r"^Commands:\n(.*?)\n\n", FILES[REFERENCE], re.M | re.S)
    assert listed
    names = set(re.findall(r"^  ([a-z][a-z0-9-]*)\s", listed.group(1), re.M)) - {"help"}
    assert names and names <= set(s.commands), (
        f"no section for {sorted(names - set(s.commands))}: add them to scripts/gen-reference.sh")


PLANTED_README = """# x

```sh
iamra-bootstrap init --vault-addr https://v:8200 \\\\
  --pki-role workload | tee log --not-ours
```

Use `serve --imds`, `--pkcs8-password-file`, `--cert-selector` (refused), `kubectl --context c`,
`IAMRA_PKI_ROLE`, `IAMRA_BIN`; prose -- like --this -- is not code.
"""


@pytest.mark.parametrize("planted, error", [
    ("", None),
    ("`iamra-bootstrap init --pki-rol x`", "has no --pki-rol"),
    ("```\\ncredential_process = iamra-bootstrap credential-process --certificat c\\n```",
     "has no --certificat"),
    ("`serve --imdsv2`", "has no --imdsv2"),
    ("`--no-such-flag`", "no command of the binary has --no-such-flag"),
    ("`iamra-bootstrap refresh --once`", "no command 'refresh'"),
    ("set `IAMRA_PKI_ROLES`", "IAMRA_PKI_ROLES is no option's variable"),
    ("```sh\\niamra-bootstrap init \\\\\\n  --verfy\\n```", "has no --verfy"),
])
def test_the_surface_check_catches_a_planted_wrong_name(planted, error):
    """A doc naming a flag, command or variable --help does not know fails the check; the
    correct names, other tools' flags in their own span and prose pass."""
    files = {REFERENCE: FILES[REFERENCE], "src/main.rs": FILES["src/main.rs"],
             "tests/conftest.py": FILES["tests/conftest.py"]}
    s = surface(files)
    text = PLANTED_README + "\n" + planted.replace("\\n", "\n").replace("\\\\", "\\") + "\n"
    bad = surface_errors("README.md", text, s)
    if error is None:
        assert bad == []
    else:
        assert len(bad) == 1 and error in bad[0], bad


@pytest.mark.parametrize("planted, ok", [
    ("see `src/main.rs` and ``tests/conftest.py``", True),
    ("see `src/vault/pki.rs`, `vault/pki.rs` (a module path) and `vault/configure.sh`", True),
    ("needroleshere's `src/sign.rs` (another project's file)", True),
    ("see `src/source_files.rs`", False),
    ("Contract (``src/no/such.rs``, issue 11)", False),
    ("`scripts/nope.sh`", False),
])
def test_the_path_check_catches_a_planted_missing_path(planted, ok, monkeypatch):
    for name in [n for n in FILES if n != SELF]:
        monkeypatch.delitem(FILES, name)
    monkeypatch.setitem(FILES, "tests/test_x.py", '"""' + planted + '"""\n' +
                        "".join(f"`src/main.rs` {i}\n" for i in range(101)))
    if ok:
        test_cited_source_paths_exist()
    else:
        with pytest.raises(AssertionError, match="does not exist"):
            test_cited_source_paths_exist()


def test_the_test_table_names_every_test_file():
    """docs/testing.md's table of what runs against what leaves no test file out."""
    table = FILES.get("docs/testing.md", "")
    missing = [name for name in FILES
               if re.fullmatch(r"tests/test_\w+\.py", name) and f"`{name}`" not in table]
    assert not missing, f"docs/testing.md does not name {', '.join(missing)}"
