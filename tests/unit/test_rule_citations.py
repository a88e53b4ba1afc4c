"""Rules are cited by name, not number (issue 15, point 8), checked.

Most modules' docstrings state their rules as a numbered block ("Rules:" then "1. ...",
"2. ..."). Comments and docstrings cite those rules by their opening words, in double
quotes, so that adding or moving a rule breaks no citation, and a citation that names a
rule which is not there fails here:

- in the same module: `(rule "every TLS wait is bounded")`, `(rules "a" and "b")`;
- in another module, with its path from the repository's top just before the citation:
  `(gateway/server/tls.py, rule "config stays inert")`.

Every module under gateway/ and adapters/ is read as text (nothing is imported;
gateway/adapters is a link to adapters/ and is skipped). Its comments and its string
statements (docstrings) are held to two checks:

1. No citation by number remains: "rule 5", "rules 2 and 3", "Rule 2:", "state rule 4",
   "rule 6's". A number after a reference to an outside text ("RFC 9112 §6.3 rule 3",
   "the ASGI spec rule ...") is that text's rule, not ours, and passes.
2. Every quoted name is, case-insensitively and ignoring line breaks and repeated spaces,
   the start of exactly one rule of the cited module, ending on a word boundary ("every"
   does not name "Everything ..."). A module is cited only by a path written right before
   the citation, else the citation names the module it is in.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("gateway", "adapters")


# The line that opens a Rules block: "Rules:", "... Rules:", "Rules (the ASGI spec):".
RULES_HEADING = re.compile(r"\bRules\b[^\n:]*:[ \t]*$", re.MULTILINE)
RULE_ITEM = re.compile(r"(\d+)\.\s+(.*)")
# A rule cited by its number. "rule" as part of another word (overrule) is not one.
NUMBERED = re.compile(r"(?<![\w-])rules?\s+#?\d+", re.IGNORECASE)
# A rule cited by name: an optional module path, then rule "x" or rules "x", "y" and "z".
NAMED = re.compile(
    r"(?:(?P<path>[\w./-]+\.py),?\s+)?(?P<rule>(?<![\w-])rules?)\s+"
    r"(?P<names>\"[^\"]+\"(?:\s*(?:,\s*and|,|and)\s*\"[^\"]+\")*)",
    re.IGNORECASE,
)
QUOTED = re.compile(r"\"([^\"]+)\"")
# Text right before "rule" that makes it an outside text's rule: an RFC, a section
# sign, a PEP, a spec ("RFC 9112 §6.3 rule 3", "the ASGI spec rule ...").
OUTSIDE_TEXT = re.compile(
    r"(?:RFC\s*\d+|§\s*\d[\d.]*|PEP\s*\d+|\bspec)(?:['\u2019]s)?[\s,]*$", re.IGNORECASE
)


def normal(text: str) -> str:
    """Line breaks and repeated spaces do not count; neither does case."""
    return " ".join(text.split()).casefold()


def rules_of(source: str) -> list[str]:
    """The texts of the module's numbered rules, rule N at index N-1, without "N. ".

    The block is the numbered list after the docstring's Rules heading, or, without a
    heading, its first numbered list. Each item starts "N. " at the line's start and goes
    on over indented lines; a blank line or any other line ends the block.
    """
    docstring = ast.get_docstring(ast.parse(source)) or ""
    heading = RULES_HEADING.search(docstring)
    lines = docstring[heading.end() if heading else 0 :].splitlines()
    rules: list[str] = []
    for line in lines:
        item = RULE_ITEM.fullmatch(line)
        if item and int(item.group(1)) == len(rules) + 1:
            rules.append(item.group(2))
        elif rules and line[:1].isspace() and line.strip():
            rules[-1] += " " + line.strip()
        elif rules or (heading and line.strip()):
            break
    return [" ".join(rule.split()) for rule in rules]


def prose_of(source: str) -> Iterator[tuple[int, str]]:
    """The comments and string statements (docstrings) of `source`, with their first
    line. A run of comment lines is one text, so a citation may wrap."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Constant):
            continue
        if isinstance(node.value.value, str):
            yield node.lineno, node.value.value
    run: list[str] = []
    start = last = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if run and line != last + 1:
            yield start, " ".join(run)
            run = []
        if not run:
            start = line
        run.append(token.string.lstrip("#"))
        last = line
    if run:
        yield start, " ".join(run)


def cites_outside_text(text: str, at: int) -> bool:
    line_start = text.rfind("\n", 0, at) + 1
    return OUTSIDE_TEXT.search(text[line_start:at]) is not None


def numbered_citations(text: str) -> Iterator[str]:
    for match in NUMBERED.finditer(text):
        if not cites_outside_text(text, match.start()):
            yield match.group(0)


def named_citations(text: str) -> Iterator[tuple[str | None, list[str]]]:
    """(the path written before it or None, the quoted names) for each citation."""
    for match in NAMED.finditer(text):
        if match.group("path") is None and cites_outside_text(text, match.start("rule")):
            continue
        yield match.group("path"), QUOTED.findall(match.group("names"))


def name_problem(name: str, rules: list[str]) -> str | None:
    """Why `name` does not name exactly one of `rules`; None when it does."""
    wanted = normal(name)
    named = [
        number
        for number, rule in enumerate(rules, 1)
        if normal(rule).startswith(wanted) and not normal(rule)[len(wanted) :][:1].isalnum()
    ]
    if not named:
        return "names no rule"
    return None if len(named) == 1 else f"names rules {named}"


def citation_problems(path: str, source: str, rules: Mapping[str, list[str]]) -> list[str]:
    """What is wrong with the rule citations in the module at `path` (its text is
    `source`); `rules` gives every module's rules by path."""
    problems = []
    for line, text in prose_of(source):
        for found in numbered_citations(text):
            problems.append(f"{path}:{line}: {found!r} cites a rule by number; cite its name")
        for cited, names in named_citations(text):
            module = cited or path
            if module not in rules:
                problems.append(f"{path}:{line}: cites {module}, which is not a module")
                continue
            for name in names:
                problem = name_problem(name, rules[module])
                if problem:
                    problems.append(f"{path}:{line}: rule {name!r} {problem} in {module}")
    return problems


def discover() -> dict[str, str]:
    """Every module's text by its path from the repository's top."""
    found: dict[str, str] = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT / folder).parts[0] != "adapters":  # the link
                found[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
    return found


# --- the real tree -------------------------------------------------------------------------

SOURCES = discover()
RULES = {path: rules_of(source) for path, source in SOURCES.items()}


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_rules_are_cited_by_name(path: str) -> None:
    assert citation_problems(path, SOURCES[path], RULES) == []


def test_the_tree_and_its_rules_were_found() -> None:
    assert "gateway/server/tls.py" in SOURCES and "adapters/wsgi.py" in SOURCES
    assert not any(path.startswith("gateway/adapters/") for path in SOURCES)
    assert RULES["gateway/server/tls.py"][4].startswith("Every TLS wait is bounded")
    # A block with a heading that ends a sentence, and one whose items span lines.
    assert RULES["adapters/disconnect.py"][2].startswith("The watch starts after the body")
    assert len(RULES["gateway/server/metrics.py"]) == 4


# --- the checker itself: it must catch what it claims to catch -----------------------------

MODULE = '''"""A module.

Rules:
1. Every wait is bounded: the handshake too.
2. Config stays inert. Files are read
   here, by the parent.
3. Layer 2: stdlib only.
"""
'''
OTHER = '"""Another.\n\nRules:\n1. Everything is logged.\n2. Nothing is cached.\n"""\n'
KNOWN = {"gateway/a.py": rules_of(MODULE), "gateway/b.py": rules_of(OTHER)}


def check(text: str) -> list[str]:
    return citation_problems("gateway/a.py", MODULE + text, KNOWN)


def test_a_rules_block_is_read_whole() -> None:
    assert KNOWN["gateway/a.py"] == [
        "Every wait is bounded: the handshake too.",
        "Config stays inert. Files are read here, by the parent.",
        "Layer 2: stdlib only.",
    ]
    without_heading = '"""Intro:\n1. One\n   more.\n2. Two.\n\nAfter.\n3. Not a rule.\n"""'
    assert rules_of(without_heading) == ["One more.", "Two."]
    assert rules_of('"""No rules here."""') == []


@pytest.mark.parametrize(
    "text",
    [
        "x = 1  # bounded (rule 1)\n",
        "# Rule 2: config stays inert\n",
        'def f() -> None:\n    """Both (rules 1 and 2)."""\n',
        "# rules 2-3 hold here\n",
        "# (rules 1, 3)\n",
        "# the state rule 4 applies\n",
        "# held to rule 1's bounds\n",
        "# see gateway/b.py rule 2\n",
        "# (rule #3)\n",
        'X = 1\n"""An attribute docstring (RULE 3)."""\n',
    ],
)
def test_checker_catches_a_number(text: str) -> None:
    problems = check(text)
    assert problems and all("by number" in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('# (rule "every wait is unbounded")\n', "'every wait is unbounded' names no rule"),
        ('# (rule "ever")\n', "names no rule"),  # a word cut short names nothing
        ('# (rule "config stays inert. Files are written")\n', "names no rule"),
        ('# (rules "layer 2" and "nothing is cached")\n', "'nothing is cached' names no"),
        ('# (gateway/b.py, rule "every wait is bounded")\n', "names no rule in gateway/b.py"),
        ('# (gateway/b.py rule "config stays inert")\n', "names no rule in gateway/b.py"),
        ('# (gateway/c.py, rule "layer 2")\n', "gateway/c.py, which is not a module"),
        ('# (b.py, rule "everything is logged")\n', "b.py, which is not a module"),
        ('# (rule "everything is logged")\n', "names no rule in gateway/a.py"),
    ],
)
def test_checker_catches_a_wrong_name_or_module(text: str, fragment: str) -> None:
    problems = check(text)
    assert problems and all(fragment in p for p in problems), problems


def test_checker_catches_a_name_that_fits_two_rules() -> None:
    rules = {"gateway/a.py": ["Layer 1: stdlib.", "Layer 1 only, again."]}
    problems = citation_problems("gateway/a.py", '# (rule "layer 1")\n', rules)
    assert problems == ["gateway/a.py:1: rule 'layer 1' names rules [1, 2] in gateway/a.py"]


@pytest.mark.parametrize(
    "text",
    [
        '# (rule "every wait is bounded")\n',
        '# (rule "Every   WAIT is bounded: the")\n',
        '# a comment that wraps (rule "config stays\n# inert. files are read here")\n',
        'def f() -> None:\n    """Wrapped (rule "config stays inert. Files\n    are read")."""\n',
        '# (rules "layer 2" and "every wait is bounded")\n',
        '# (rules "layer 2", "config stays inert" and "every wait")\n',
        '# (gateway/b.py, rule "everything is logged")\n',
        '# the other module (gateway/b.py, rules "everything" and "nothing is cached")\n',
        "# RFC 9112 §6.3 rule 3: the length decides\n",
        '# the ASGI spec rule "Error Handling" says so\n',
        "# RFC 9112's rule 7\n",
        "# the rules of the mount file; ruler 3; overrule 2\n",
        'x = "rule 5"  # a string in code is not prose\n',
    ],
)
def test_checker_allows(text: str) -> None:
    assert check(text) == []
