# SPDX-License-Identifier: GPL-3.0-or-later
"""Version numbers and requirements (plugins/module_utils/_version.py)."""
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import (
    VersionError,
    parse_requirement,
    parse_version,
    requirement_is_exact,
    satisfies,
)


@pytest.mark.parametrize("text, expected", [
    ("1.13.2", (1, 13, 2)), ("v9.0", (9, 0, 0)), ("11", (11, 0, 0)), ("1.8.0-dirty", (1, 8, 0)),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("version, requirement, expected", [
    ((1, 13, 2), "1.13.2", True),
    ((1, 13, 3), "1.13.2", False),
    # a shorter requirement compares only the parts it gives
    ((1, 13, 2), "1.13", True),
    ((1, 13, 0), "==1.13", True),
    ((1, 14, 0), "1.13", False),
    ((1, 13, 9), "1", True),
    ((1, 13, 5), "<=1.13", True),
    ((1, 14, 0), "<=1.13", False),
    ((1, 13, 5), ">1.13", False),
    ((1, 14, 0), ">1.13", True),
    ((1, 12, 9), ">=1.13", False),
    ((1, 13, 0), ">=1.13", True),
    ((1, 12, 9), "<1.13", True),
    ((1, 13, 0), "<1.13", False),
    ((1, 10, 0), ">=1.10.0", True),
    ((1, 9, 9), ">=1.10.0", False),
])
def test_satisfies(version, requirement, expected):
    assert satisfies(version, requirement) is expected


def test_requirement_is_exact():
    assert requirement_is_exact("1.13.2") and requirement_is_exact("==1.13.2") and requirement_is_exact("=1.13.2")
    assert not requirement_is_exact("1.13") and not requirement_is_exact(">=1.13.2")


@pytest.mark.parametrize("bad", ["", "latest", ">=", "1.x", "1.10-1.13", "1.13-rc1", "1.13.2.1"])
def test_bad_requirements(bad):
    with pytest.raises(VersionError):
        parse_requirement(bad)
