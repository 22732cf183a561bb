# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version numbers and version requirements, shared by every table in the collection.

Private module_utils: other collections must not import it.
"""

from __future__ import annotations

import re
import typing as t

_VERSION_RE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+~](\S*))?\s*$")
_REQ_RE = re.compile(r"^\s*(==|>=|<=|>|<|=)?\s*(\S+)\s*$")


class VersionError(ValueError):
    """A version or version requirement string that cannot be parsed."""


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse ``1.13.2``, ``1.8.0-dirty``, ``v9.0``, ``11`` into a 3-tuple of ints."""
    m = _VERSION_RE.match(text or "")
    if not m:
        raise VersionError(f"not a version number: {text!r} (expected X.Y.Z)")
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def format_version(version: t.Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


def libvirt_int_to_version(number: int) -> tuple[int, int, int]:
    """Turn libvirt's ``getLibVersion()`` integer (major*1e6 + minor*1e3 + micro) into a tuple."""
    return (number // 1000000, (number // 1000) % 1000, number % 1000)


def _precision(text: str) -> int:
    """How many of major, minor, micro ``text`` gives (``1.13`` -> 2)."""
    m = _VERSION_RE.match(text or "")
    if not m:
        raise VersionError(f"not a version number: {text!r} (expected X.Y.Z)")
    return 1 + (m.group(2) is not None) + (m.group(3) is not None)


def parse_requirement(text: str) -> tuple[str, tuple[int, int, int]]:
    """Parse ``1.13.2`` (exact), ``==1.13.2``, ``>=1.10.0`` ... into ``(operator, version)``."""
    op, version, _precision_ = _parse_requirement(text)
    return op, version


def _parse_requirement(text: str) -> tuple[str, tuple[int, int, int], int]:
    m = _REQ_RE.match(text or "")
    if not m:
        raise VersionError(f"not a version requirement: {text!r} (expected e.g. 1.13.2 or >=1.10.0)")
    op = m.group(1) or "=="
    if op == "=":
        op = "=="
    if not re.fullmatch(r"v?\d+(?:\.\d+){0,2}", m.group(2)):
        raise VersionError(
            f"not a version requirement: {text!r} (expected X, X.Y or X.Y.Z, optionally after ==, >=, <=, > or <, "
            "e.g. 1.13.2 or >=1.10)"
        )
    return op, parse_version(m.group(2)), _precision(m.group(2))


def requirement_is_exact(text: str) -> bool:
    """True for ``1.13.2`` / ``==1.13.2``; ``1.13`` means any 1.13.x and is not exact."""
    op, _version, precision = _parse_requirement(text)
    return op == "==" and precision == 3


def satisfies(version: t.Sequence[int], requirement: str) -> bool:
    """True when ``version`` meets ``requirement`` (see :func:`parse_requirement`).

    A requirement with fewer parts compares only those parts: ``1.13`` is met by every 1.13.x,
    ``<=1.13`` by 1.13.5, ``>1.13`` only from 1.14.0 on.
    """
    op, wanted, precision = _parse_requirement(requirement)
    have = tuple(version)[:precision]
    wanted = wanted[:precision]
    return {
        "==": have == wanted,
        ">=": have >= wanted,
        "<=": have <= wanted,
        ">": have > wanted,
        "<": have < wanted,
    }[op]
