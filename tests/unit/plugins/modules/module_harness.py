# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the module tests: load a module, capture the argument spec its ``main()`` builds."""
from __future__ import annotations

import importlib
import typing as t
from pathlib import Path

import pytest

PACKAGE = "ansible_collections.virtiofs.libvirt.plugins.modules"
MODULE_NAMES = sorted(p.stem for p in (Path(__file__).resolve().parents[4] / "plugins" / "modules").glob("*.py")
                      if p.stem != "__init__")


def load(name: str) -> t.Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


class _Captured(Exception):
    def __init__(self, kwargs: t.Dict[str, t.Any]) -> None:
        super().__init__("AnsibleModule called")
        self.kwargs = kwargs


def argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> t.Dict[str, t.Any]:
    """The keyword arguments ``main()`` of module ``name`` passes to ``AnsibleModule``."""
    module = load(name)

    def fake(**kwargs: t.Any) -> None:
        raise _Captured(kwargs)

    monkeypatch.setattr(module, "AnsibleModule", fake)
    with pytest.raises(_Captured) as exc:
        module.main()
    return exc.value.kwargs
