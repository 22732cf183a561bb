# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: run a module's ``main()`` in-process and read its result, record ``fail_json`` calls."""
from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from module_harness import load


@pytest.fixture
def run_module(capsys):
    """``run_module(name, args) -> result``: ``main()`` with ``args``, its JSON result."""

    def run(name: str, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        module = load(name)
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run


@pytest.fixture
def fail_calls(monkeypatch):
    """The keyword arguments of every ``fail_json`` call (``exception`` reaches the result only
    when tracebacks are enabled, so tests look here)."""
    calls: t.List[t.Dict[str, t.Any]] = []
    original = basic.AnsibleModule.fail_json

    def record(self: t.Any, msg: str, **kwargs: t.Any) -> t.NoReturn:
        calls.append(dict(kwargs, msg=msg))
        original(self, msg, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "fail_json", record)
    return calls
