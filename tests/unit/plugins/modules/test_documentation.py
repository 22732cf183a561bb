# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module documents exactly the options its argument spec has, with the same type,
choices, default, elements, aliases and required flag (suboptions too), and its EXAMPLES
and RETURN are well-formed. ansible-test's validate-modules checks much of this too, but
only in the slow sanity run; this fails in the unit tests, and names the option."""
from __future__ import annotations

import importlib
import typing as t

import pytest
import yaml

from module_harness import MODULE_NAMES, argument_spec, load

FQCN = "virtiofs.libvirt.{}"


def _normal(spec: t.Dict[str, t.Any], key: str) -> t.Any:
    value = spec.get(key)
    if key == "type":
        return value or "str"
    if key == "required":
        return bool(value)
    if key in ("choices", "aliases"):
        return sorted(value) if value else None
    if key == "elements":
        return value
    return value


def compare(spec: t.Dict[str, t.Any], doc: t.Dict[str, t.Any], where: str = "") -> t.List[str]:
    """Differences between an argument spec and documented options, one line each."""
    problems = []
    for name in sorted(set(spec) | set(doc)):
        path = f"{where}{name}"
        if name not in doc:
            problems.append(f"{path}: in the argument spec, not documented")
            continue
        if name not in spec:
            problems.append(f"{path}: documented, not in the argument spec")
            continue
        s, d = spec[name], doc[name]
        if not d.get("description"):
            problems.append(f"{path}: no description")
        for key in ("type", "elements", "choices", "aliases", "required", "default"):
            if _normal(s, key) != _normal(d, key):
                problems.append(f"{path}: {key} is {_normal(s, key)!r} in the spec, {_normal(d, key)!r} in the docs")
        sub_spec, sub_doc = s.get("options"), d.get("suboptions")
        if sub_spec or sub_doc:
            problems += compare(sub_spec or {}, sub_doc or {}, f"{path}.")
    return problems


def test_compare_finds_differences():
    spec = {"a": {"type": "int", "default": 1}, "b": {}, "c": {"type": "dict", "options": {"x": {"choices": ["p", "q"]}}}}
    doc = {"a": {"description": "A", "type": "int", "default": 2}, "b": {"description": "B", "type": "str"},
           "c": {"description": "C", "type": "dict", "suboptions": {"x": {"description": "X", "choices": ["q"]}}},
           "d": {"description": "D"}}
    assert compare(spec, doc) == [
        "a: default is 1 in the spec, 2 in the docs",
        "c.x: choices is ['p', 'q'] in the spec, ['q'] in the docs",
        "d: documented, not in the argument spec",
    ]


def documented_options(doc: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """The module's options with those of its doc fragments (``virtiofs.libvirt.<name>``) merged in."""
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment", []):
        parts = fragment.split(".")
        assert parts[:2] == ["virtiofs", "libvirt"], fragment
        name, variable = parts[2], (parts[3] if len(parts) > 3 else "")
        cls = importlib.import_module(
            f"ansible_collections.virtiofs.libvirt.plugins.doc_fragments.{name}").ModuleDocFragment
        extra = yaml.safe_load(getattr(cls, (variable or "documentation").upper())).get("options") or {}
        for key in extra:
            assert key not in options, f"{key} is documented by the module and by the fragment {fragment}"
        options.update(extra)
    return options


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_argument_spec_matches_documentation(name, monkeypatch):
    doc = yaml.safe_load(load(name).DOCUMENTATION)
    assert doc["module"] == name
    spec = argument_spec(name, monkeypatch)["argument_spec"]
    assert compare(spec, documented_options(doc)) == []


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_check_mode_support_is_declared(name, monkeypatch):
    doc = yaml.safe_load(load(name).DOCUMENTATION)
    assert argument_spec(name, monkeypatch)["supports_check_mode"] is True
    fragments = doc.get("extends_documentation_fragment", [])
    assert "virtiofs.libvirt._attributes" in fragments
    assert doc.get("attributes", {}).get("check_mode", {}).get("support", "full") != "none" or any(
        f.endswith("INFO_MODULE") for f in fragments)


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_examples_are_tasks_that_use_the_module(name):
    tasks = yaml.safe_load(load(name).EXAMPLES)
    assert isinstance(tasks, list) and tasks, "EXAMPLES holds no tasks"
    for task in tasks:
        assert isinstance(task, dict) and task.get("name"), f"unnamed example: {task!r}"
    assert any(FQCN.format(name) in task for task in tasks), f"no example calls {FQCN.format(name)}"


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_return_values_are_documented(name):
    ret = yaml.safe_load(load(name).RETURN)
    assert isinstance(ret, dict) and ret
    for key, value in ret.items():
        assert value.get("description"), f"{key}: no description"
        assert value.get("returned"), f"{key}: no 'returned'"
        assert value.get("type") in ("str", "int", "bool", "list", "dict", "float", "raw", "complex"), key
