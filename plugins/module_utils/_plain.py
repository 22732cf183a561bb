# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Values as builtin Python types, for the filters that hand role variables to plain Python.

Private module_utils: other collections must not import it.

Ansible >= 2.19 hands filters subclasses of the builtin types (``_AnsibleTaggedStr``,
``_AnsibleTaggedInt``, lazy dicts and lists); their class names would end up in messages
(``tag must be a string, got _AnsibleTaggedInt 0``). Unit-tested in
tests/unit/plugins/module_utils/test__plain.py.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping


def builtin_value(value: t.Any) -> t.Any:
    """``value`` as its builtin type (a scalar; containers are left as they are)."""
    for cls in type(value).__mro__:
        if cls.__module__ == "builtins" and cls is not object:
            return value if value.__class__ is cls else cls(value)
    return value


def plain(value: t.Any) -> t.Any:
    """``value`` with every dict, list and scalar in it as a builtin type (dicts keep their order;
    tuples and other sequences become lists)."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return builtin_value(value)
