# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt domain XML feature table for virtio-fs: which libvirt version knows which XML.

Private module_utils: other collections must not import it.

Plain Python, no Ansible and no libvirt imports. This is the only place that records which
libvirt release added which piece of ``<filesystem>`` / ``<memoryBacking>`` XML (sources:
``docs/reference.md`` C.1, C.2). Older libvirt silently drops XML it does not
know, so a patcher that does not gate on this table would redefine the domain forever.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import (
    format_version,
    libvirt_int_to_version,
    parse_version,
)

Version = t.Tuple[int, int, int]


@dataclass(frozen=True)
class LibvirtFeature:
    """One piece of domain XML and the first libvirt release that accepts it."""

    name: str
    since: Version
    xml: str
    description: str

    @property
    def since_string(self) -> str:
        return format_version(self.since)


_TABLE: t.Tuple[LibvirtFeature, ...] = (
    LibvirtFeature("virtiofs", (6, 2, 0), "<driver type='virtiofs'/>", "virtio-fs filesystems"),
    LibvirtFeature("binary_path", (6, 2, 0), "<binary path='...'/>", "daemon path override"),
    LibvirtFeature("xattr", (6, 2, 0), "<binary xattr='on|off'/>", "extended attributes"),
    LibvirtFeature("cache", (6, 2, 0), "<binary><cache mode='none|always'/>", "cache mode"),
    LibvirtFeature("queue_size", (6, 2, 0), "<driver queue='N'/>", "virtqueue size"),
    LibvirtFeature("ats", (3, 5, 0), "<driver ats='on|off'/>", "virtio ATS"),
    LibvirtFeature("iommu", (3, 5, 0), "<driver iommu='on|off'/>", "virtio IOMMU platform"),
    LibvirtFeature("packed", (6, 3, 0), "<driver packed='on|off'/>", "packed virtqueues"),
    LibvirtFeature(
        "memfd",
        (6, 9, 0),
        "<memoryBacking><source type='memfd'/><access mode='shared'/>",
        "memfd shared memory without NUMA cells",
    ),
    LibvirtFeature("boot", (7, 1, 0), "<filesystem><boot order='N'/>", "booting from virtio-fs"),
    LibvirtFeature("sandbox", (7, 2, 0), "<binary><sandbox mode='namespace|chroot'/>", "sandbox mode"),
    LibvirtFeature("thread_pool", (8, 5, 0), "<binary><thread_pool size='N'/>", "daemon thread pool size"),
    LibvirtFeature("idmap", (10, 0, 0), "<filesystem><idmap>", "uid/gid mapping"),
    LibvirtFeature("openfiles", (10, 6, 0), "<binary><openfiles max='N'/>", "open file limit"),
    LibvirtFeature("readonly", (11, 0, 0), "<filesystem><readonly/>", "read-only virtio-fs"),
)

FEATURES: t.Dict[str, LibvirtFeature] = {f.name: f for f in _TABLE}


class LibvirtFeatureError(Exception):
    """A requested XML feature that the host's libvirt does not support."""

    def __init__(self, message: str, missing: t.Sequence[LibvirtFeature] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


def host_version(value: t.Union[int, str, t.Sequence[int]]) -> Version:
    """Normalise libvirt's ``getLibVersion()`` integer, ``"9.0.0"`` or a tuple to a 3-tuple."""
    if isinstance(value, int):
        return libvirt_int_to_version(value)
    if isinstance(value, str):
        return parse_version(value)
    parts = tuple(int(p) for p in value)
    return (parts + (0, 0, 0))[:3]  # type: ignore[return-value]


def get_feature(name: str) -> LibvirtFeature:
    try:
        return FEATURES[name]
    except KeyError:
        raise LibvirtFeatureError(f"unknown libvirt feature {name!r} (known: {', '.join(sorted(FEATURES))})") from None


def supports(name: str, version: t.Union[int, str, t.Sequence[int]]) -> bool:
    """True when libvirt ``version`` accepts feature ``name``."""
    return host_version(version) >= get_feature(name).since


def unsupported(names: t.Iterable[str], version: t.Union[int, str, t.Sequence[int]]) -> t.List[LibvirtFeature]:
    """The features of ``names`` (in table order, without duplicates) that ``version`` lacks."""
    have = host_version(version)
    wanted = set(names)
    for name in wanted:
        get_feature(name)
    return [f for f in _TABLE if f.name in wanted and have < f.since]


def check_features(
    names: t.Iterable[str],
    version: t.Union[int, str, t.Sequence[int]],
    context: str = "",
) -> None:
    """Raise :class:`LibvirtFeatureError` naming every feature of ``names`` that ``version`` lacks.

    The message names the feature, the libvirt version it needs and the host's version, e.g.
    ``feature 'readonly' (<filesystem><readonly/>) needs libvirt >= 11.0.0, this host has
    libvirt 9.0.0``.
    """
    missing = unsupported(names, version)
    if not missing:
        return
    have = format_version(host_version(version))
    parts = [
        f"feature {f.name!r} ({f.xml}) needs libvirt >= {f.since_string}, this host has libvirt {have}"
        for f in missing
    ]
    prefix = f"{context}: " if context else ""
    raise LibvirtFeatureError(
        prefix + "; ".join(parts) + ". Remove the option(s) or upgrade libvirt on the host.",
        missing,
    )


def table() -> t.List[t.Dict[str, str]]:
    """The table as plain dicts (for docs and ``share_info``)."""
    return [
        {"name": f.name, "since": f.since_string, "xml": f.xml, "description": f.description}
        for f in _TABLE
    ]
