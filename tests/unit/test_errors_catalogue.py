# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/errors.md is honest: every refusal it lists is built in plugins/ or roles/ and asserted by its test.

Each row of the catalogue names a message fragment and a test node id. A row is accepted when

* its id is unique and its "unchanged" column is not empty;
* the test file exists and holds the test function (``test_x`` or ``Class::test_x``; a
  parametrized id's ``[...]`` is stripped);
* the fragment (at least 15 characters) occurs in the source of that test function - with its
  decorators, so a ``parametrize`` list counts, and with the module-level assignments it uses by
  name (a table of expected messages at the top of the file) - and in the text of a file under
  plugins/ or roles/, so rewording a message breaks the catalogue until both are updated.
"""
from __future__ import annotations

import ast
import functools
import re
import typing as t
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "errors.md"
COLUMNS = ["id", "input (what the user did)", "message (a fragment that appears verbatim in the error)", "unchanged", "test"]
MIN_ROWS = 60
MIN_FRAGMENT = 15
SOURCE_DIRS = ("plugins", "roles")
SOURCE_SUFFIXES = (".py", ".yml", ".yaml", ".j2")


class Row(t.NamedTuple):
    line: int
    id: str
    input: str
    message: str
    unchanged: str
    test: str


def _cells(line: str) -> t.List[str]:
    """The cells of a Markdown table line (``|`` inside backticks does not occur in the catalogue)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _code(cell: str) -> str:
    """The text of a cell written as `code` (the backticks removed), else the cell itself."""
    m = re.fullmatch(r"`(.*)`", cell)
    return m.group(1) if m else cell


def parse_catalogue(text: str) -> t.Tuple[t.List[Row], t.List[str]]:
    """The rows of every table in ``text`` and the problems with the tables' shape."""
    rows: t.List[Row] = []
    problems: t.List[str] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if not in_table:
            in_table = True
            if cells != COLUMNS:
                problems.append(f"line {number}: table header {cells} is not {COLUMNS}")
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        if len(cells) != len(COLUMNS):
            problems.append(f"line {number}: {len(cells)} cells, expected {len(COLUMNS)}")
            continue
        rows.append(Row(number, cells[0], cells[1], _code(cells[2]), cells[3], _code(cells[4])))
    return rows, problems


@functools.lru_cache(maxsize=None)
def _source_texts() -> t.Tuple[str, ...]:
    texts = []
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in SOURCE_SUFFIXES:
                texts.append(path.read_text(encoding="utf-8"))
    return tuple(texts)


def in_sources(fragment: str) -> bool:
    return any(fragment in text for text in _source_texts())


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> t.Tuple[str, ast.Module]:
    text = path.read_text(encoding="utf-8")
    return text, ast.parse(text)


def _segment(text: str, node: ast.AST) -> str:
    """The source of ``node`` from its first decorator to its end."""
    lines = text.splitlines(keepends=True)
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "".join(lines[first - 1:node.end_lineno])


def function_source(node_id: str, root: Path = ROOT) -> t.Tuple[t.Optional[str], str]:
    """(source of the test function named by ``node_id`` or None, the reason it was not found)."""
    parts = node_id.split("::")
    if len(parts) not in (2, 3):
        return None, f"{node_id!r} is not path::test or path::Class::test"
    path = root / parts[0]
    if not path.is_file():
        return None, f"test file {parts[0]} does not exist"
    text, tree = _parsed(path)
    names = [re.sub(r"\[.*\]$", "", p) for p in parts[1:]]
    body: t.Sequence[ast.stmt] = tree.body
    node: t.Optional[ast.AST] = None
    for i, name in enumerate(names):
        want = ast.ClassDef if i < len(names) - 1 else (ast.FunctionDef, ast.AsyncFunctionDef)
        node = next((n for n in body if isinstance(n, want) and n.name == name), None)
        if node is None:
            return None, f"{parts[0]} has no {'class' if want is ast.ClassDef else 'test function'} {name}"
        body = getattr(node, "body", [])
    assert node is not None
    source = _segment(text, node)
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for stmt in tree.body:  # module-level tables of expected messages the test reads by name
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if any(isinstance(x, ast.Name) and x.id in used for x in targets):
            source += "\n" + _segment(text, stmt)
    return source, ""


def check_rows(rows: t.Sequence[Row], root: Path = ROOT) -> t.List[str]:
    """Every problem of ``rows``, one line each (empty when the catalogue is honest)."""
    problems = []
    seen: t.Dict[str, int] = {}
    for row in rows:
        where = f"line {row.line} ({row.id})"
        if not re.fullmatch(r"[a-z_]+-\d{2,}", row.id):
            problems.append(f"{where}: id {row.id!r} is not <module>-NN")
        if row.id in seen:
            problems.append(f"{where}: id {row.id!r} is used already on line {seen[row.id]}")
        seen.setdefault(row.id, row.line)
        if not row.input:
            problems.append(f"{where}: the input column is empty")
        if not row.unchanged:
            problems.append(f"{where}: the unchanged column is empty")
        if len(row.message) < MIN_FRAGMENT:
            problems.append(f"{where}: fragment {row.message!r} is shorter than {MIN_FRAGMENT} characters")
        if not in_sources(row.message):
            problems.append(f"{where}: fragment {row.message!r} occurs in no file under plugins/ or roles/")
        source, why = function_source(row.test, root)
        if source is None:
            problems.append(f"{where}: {why}")
        elif row.message not in source:
            problems.append(f"{where}: fragment {row.message!r} does not occur in the source of {row.test}")
    return problems


def catalogue_rows() -> t.List[Row]:
    rows, problems = parse_catalogue(CATALOGUE.read_text(encoding="utf-8"))
    assert problems == []
    return rows


def test_catalogue_has_enough_rows():
    assert len(catalogue_rows()) >= MIN_ROWS


def test_every_row_is_backed_by_the_source_and_a_test():
    problems = check_rows(catalogue_rows())
    assert problems == [], "\n".join(problems)


def test_every_module_and_role_has_a_table():
    text = CATALOGUE.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+)$", text, flags=re.M))
    modules = {f"virtiofs.libvirt.{p.stem}" for p in (ROOT / "plugins" / "modules").glob("*.py")}
    roles = {f"role virtiofs.libvirt.{p.name}" for p in (ROOT / "roles").iterdir() if p.is_dir()}
    assert modules | roles <= headings, sorted((modules | roles) - headings)
    prefixes = {row.id.rsplit("-", 1)[0] for row in catalogue_rows()}
    required = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")} | {
        p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    filters = {p.stem for p in (ROOT / "plugins" / "filter").glob("*.py")}  # a filter's table is optional
    assert required <= prefixes <= required | filters, sorted(prefixes ^ required)
    for name in prefixes & filters:
        assert f"filter virtiofs.libvirt.{name}" in headings, name


# --- the checker itself can fail ---------------------------------------------------------------

HERE = "tests/unit/test_errors_catalogue.py"


def _row(**kw: str) -> Row:
    values = dict(line=1, id="share-99", input="`source` relative", unchanged="domain definition",
                  message="is a relative path: give an absolute host directory",
                  test=f"{HERE}::test_a_sample_test_the_checker_reads")
    values.update(kw)
    return Row(**values)  # type: ignore[arg-type]


def test_a_sample_test_the_checker_reads():
    """A test the fake rows below point at: it asserts one real message."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXMLError, ShareSpec

    with pytest.raises(DomainXMLError) as err:
        ShareSpec(tag="a", source="relative").validate()
    assert "is a relative path: give an absolute host directory" in str(err.value)


def test_checker_accepts_a_good_row():
    assert check_rows([_row()]) == []


@pytest.mark.parametrize("kw, expected", [
    (dict(message="is a relative path: give a relative one"), "occurs in no file under plugins/ or roles/"),
    (dict(message="give an absolute host directory."), "occurs in no file under plugins/ or roles/"),
    (dict(message="source is required with state=present"), "does not occur in the source of"),
    (dict(message="is relative"), "shorter than 15 characters"),
    (dict(test=f"{HERE}::test_no_such_test"), "has no test function test_no_such_test"),
    (dict(test=f"{HERE}::Nope::test_checker_accepts_a_good_row"), "has no class Nope"),
    (dict(test="tests/unit/test_nope.py::test_x"), "test file tests/unit/test_nope.py does not exist"),
    (dict(unchanged=""), "the unchanged column is empty"),
    (dict(id="share 1"), "is not <module>-NN"),
])
def test_checker_reports_a_bad_row(kw, expected):
    problems = check_rows([_row(**kw)])
    assert any(expected in p for p in problems), problems


def test_checker_reports_a_duplicate_id():
    problems = check_rows([_row(), _row(line=2)])
    assert problems == ["line 2 (share-99): id 'share-99' is used already on line 1"]


def test_parametrized_ids_and_module_level_tables_count():
    problems = check_rows([_row(test=f"{HERE}::test_checker_reports_a_bad_row[kw0-occurs]",
                                message="occurs in no file under plugins/ or roles/")])
    assert len(problems) == 1 and "occurs in no file under plugins/ or roles/" in problems[0], problems  # found the test
    source, why = function_source(f"{HERE}::test_checker_reports_a_bad_row[kw3-shorter]")
    assert source is not None, why
    assert "shorter than 15 characters" in source  # the parametrize list is read
    assert 'HERE = "tests/unit/' in source  # a module-level name the test (its decorator) uses
    source, why = function_source(f"{HERE}::test_checker_reports_a_duplicate_id")
    assert source is not None, why
    assert 'HERE = "tests/unit/' not in source and "MIN_ROWS = " not in source
