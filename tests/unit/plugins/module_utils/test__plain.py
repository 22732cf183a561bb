# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plain(): subclasses of the builtin types (as Ansible's tagged values) become the builtin types."""
from __future__ import annotations

from collections import OrderedDict

from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import builtin_value, plain


class TaggedStr(str):
    pass


class TaggedInt(int):
    pass


class LazyList(list):
    pass


def test_builtin_value():
    assert builtin_value(TaggedStr("a")).__class__ is str and builtin_value(TaggedStr("a")) == "a"
    assert builtin_value(TaggedInt(3)).__class__ is int and builtin_value(TaggedInt(3)) == 3
    assert builtin_value(None) is None and builtin_value(True) is True
    marker = object()
    assert builtin_value(marker) is marker


def test_plain_recurses_and_keeps_order():
    value = OrderedDict([(TaggedStr("b"), LazyList([TaggedInt(0), (TaggedStr("x"),)])), ("a", {"k": TaggedStr("v")})])
    out = plain(value)
    assert out == {"b": [0, ["x"]], "a": {"k": "v"}} and list(out) == ["b", "a"]
    assert [v.__class__ for v in (out, out["b"], out["b"][0], out["b"][1][0])] == [dict, list, int, str]
    assert [k.__class__ for k in out] == [str, str]
