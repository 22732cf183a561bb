# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A role's ``fail``/``assert`` task rendered by Ansible's own templating, without a play.

The roles assemble some messages in YAML (``msg: >-`` with Jinja). :func:`refusal` finds a task
by name in ``roles/<role>/tasks/<file>``, evaluates the ``when`` of the task and of the blocks
around it, renders the task's ``vars`` and its message with the variables the role would have,
and returns whether the task fails and the message. Filters of this collection are not loaded:
pass the value a task's ``vars`` would compute with them as a variable (the caller computes it
with the filter or its module_utils function).
"""
from __future__ import annotations

import typing as t
from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[4]


def _find(tasks: t.Sequence[t.Mapping[str, t.Any]], name: str,
          whens: t.List[t.Any]) -> t.Optional[t.Tuple[t.Mapping[str, t.Any], t.List[t.Any]]]:
    for task in tasks:
        if task.get("name") == name:
            return task, whens
        for section in ("block", "rescue", "always"):
            if section in task:
                found = _find(task[section], name, whens + [task.get("when", [])])
                if found:
                    return found
    return None


def _conditions(when: t.Any) -> t.List[t.Any]:
    return when if isinstance(when, list) else [] if when in (None, []) else [when]


def _templar(variables: t.Mapping[str, t.Any]) -> Templar:
    return Templar(loader=DataLoader(), variables=dict(variables))


def _task(role: str, file: str, name: str) -> t.Tuple[t.Mapping[str, t.Any], t.List[t.Any]]:
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / file).read_text(encoding="utf-8"))
    found = _find(tasks, name, [])
    assert found is not None, f"roles/{role}/tasks/{file} has no task {name!r}"
    return found


def facts(role: str, file: str, name: str, **variables: t.Any) -> t.Dict[str, t.Any]:
    """The facts the ``set_fact`` task named ``name`` sets with ``variables``."""
    task = _task(role, file, name)[0]
    templar = _templar(variables)
    return {key: templar.template(trust_as_template(value)) for key, value in task["ansible.builtin.set_fact"].items()}


def refusal(role: str, file: str, name: str, **variables: t.Any) -> t.Tuple[bool, str]:
    """(whether the task named ``name`` fails with ``variables``, the message it fails with or ``""``)."""
    task, whens = _task(role, file, name)
    variables.setdefault("ansible_check_mode", False)
    for key, value in (task.get("vars") or {}).items():
        if key not in variables:
            variables[key] = _templar(variables).template(trust_as_template(value))
    templar = _templar(variables)
    conditions = [c for w in whens + [task.get("when", [])] for c in _conditions(w)]
    if not all(templar.evaluate_conditional(trust_as_template(c)) for c in conditions):
        return False, ""
    if "ansible.builtin.assert" in task:
        spec = task["ansible.builtin.assert"]
        if all(templar.evaluate_conditional(trust_as_template(c)) for c in _conditions(spec["that"])):
            return False, ""
        return True, templar.template(trust_as_template(spec["fail_msg"]))
    return True, templar.template(trust_as_template(task["ansible.builtin.fail"]["msg"]))
