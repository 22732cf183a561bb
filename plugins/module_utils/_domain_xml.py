# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent patching of libvirt domain XML for virtio-fs shares.

Private module_utils: other collections must not import it.

Plain Python over lxml: no Ansible and no libvirt imports, so it is unit-testable anywhere.

Ownership rules (libvirt's behaviour behind them: docs/reference.md C.1, C.4):

* A share is a ``<devices><filesystem>`` whose ``<driver type='virtiofs'/>``, identified by
  its tag (``<target dir='TAG'/>``). Only those elements and the ``<memoryBacking>`` children
  ``<source>``/``<access>`` are ever touched; everything else (metadata, other namespaces,
  comments, device order, whitespace) is left as it is.
* Changes are detected semantically: ``<address>``, ``<alias>``, attribute order, quoting,
  whitespace, child order and the defaults libvirt adds (``type='mount'``,
  ``accessmode='passthrough'``) are ignored. An element is only rewritten when its meaning
  differs from the wanted one.
* ``<lock>`` is never written (the Rust virtiofsd rejects it); an existing one on a managed
  share is dropped with a warning, one on any other share is reported in a warning.
* All XML is built with lxml's element API.
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
import stat
import traceback
import typing as t
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import FEATURES
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import (  # noqa: F401 (re-exported)
    CACHE_MODES,
    MANAGED_KEYS,
    MEMORY_BACKING_MODES,
    OPTION_FEATURES,
    SANDBOX_MODES,
    SPEC_OPTIONS,
    STATES,
)

try:
    from lxml import etree

    HAS_LXML = True
    LXML_IMPORT_ERROR: t.Optional[str] = None
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    etree = None  # type: ignore[assignment]
    HAS_LXML = False
    LXML_IMPORT_ERROR = traceback.format_exc()


TAG_MAX_BYTES = 36
# Characters a tag may use: the guest writes the tag into /etc/fstab (whitespace, '#' and '\\'
# would need escaping there) and mount reads it from the command line; ',' separates mount
# options. One rule for the share module and both roles (filter virtiofs.libvirt.tag_error).
TAG_CHARS = "A-Z a-z 0-9 . _ : @ + = / -"
_TAG_RE = re.compile(r"[A-Za-z0-9._:@+=/-]+")

# Order in which libvirt formats elements; used to insert new elements at the place libvirt
# itself would print them (libvirt re-orders on define anyway, so this is cosmetic).
DOMAIN_ORDER = (
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
    "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
    "iothreadids", "defaultiothread", "cputune", "numatune", "resource", "sysinfo", "bootloader",
    "bootloader_args", "os", "idmap", "features", "cpu", "clock", "on_poweroff", "on_reboot",
    "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel", "keywrap", "launchSecurity",
)
DEVICES_ORDER = (
    "emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial",
    "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio", "video",
    "hostdev", "redirdev", "redirfilter", "hub", "watchdog", "memballoon", "rng", "panic", "shmem",
    "memory", "iommu", "vsock", "crypto", "pstore",
)
MEMORY_BACKING_ORDER = ("hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard")
FILESYSTEM_ORDER = ("driver", "binary", "idmap", "source", "target", "readonly", "boot", "alias", "address")
BINARY_ORDER = ("cache", "sandbox", "lock", "thread_pool", "openfiles")

# Children ignored when comparing filesystems: assigned by libvirt, not meaning we own.
IGNORED_CHILDREN = ("address", "alias")
# Attributes libvirt adds when they are missing.
ELEMENT_DEFAULTS = {"filesystem": {"type": "mount", "accessmode": "passthrough"}}


_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _normal_path(path: str) -> str:
    """``path`` with repeated slashes, ``.`` and ``..`` folded (a leading ``//`` too)."""
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm.startswith("/") else norm


class DomainXMLError(Exception):
    """Bad input for the patcher: the message names the problem and the fix."""


def require_lxml() -> None:
    if not HAS_LXML:
        raise DomainXMLError("the Python library lxml is required (install python3-lxml or pip install lxml)")


def looks_like_uuid(text: str) -> bool:
    return bool(_UUID_RE.match(text or ""))


def _onoff(value: t.Optional[bool]) -> t.Optional[str]:
    if value is None:
        return None
    return "on" if value else "off"


def _from_onoff(value: t.Optional[str]) -> t.Optional[bool]:
    if value is None:
        return None
    return value.lower() in ("on", "yes", "true", "1")


def _int_or_none(value: t.Optional[str]) -> t.Optional[int]:
    if value is None:
        return None
    try:
        return int(value, 0) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Share specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdMapRange:
    """One ``<uid>``/``<gid>`` range of ``<idmap>``: guest ``start`` maps to host ``target``."""

    start: int
    target: int
    count: int

    def to_dict(self) -> t.Dict[str, int]:
        return {"start": self.start, "target": self.target, "count": self.count}


@dataclass
class ShareSpec:
    """The wanted state of one virtio-fs share. ``None`` means "not set" (libvirt's default).

    A spec describes the whole managed share: options that are not set are removed from an
    existing share, so the result does not depend on what was there before.
    """

    tag: str
    source: t.Optional[str] = None
    state: str = "present"
    binary_path: t.Optional[str] = None
    readonly: bool = False
    cache: t.Optional[str] = None
    sandbox: t.Optional[str] = None
    xattr: t.Optional[bool] = None
    thread_pool_size: t.Optional[int] = None
    openfiles: t.Optional[int] = None
    queue_size: t.Optional[int] = None
    uid_map: t.List[IdMapRange] = field(default_factory=list)
    gid_map: t.List[IdMapRange] = field(default_factory=list)
    ats: t.Optional[bool] = None
    iommu: t.Optional[bool] = None
    packed: t.Optional[bool] = None

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> "ShareSpec":
        """Build a spec from module-style parameters (``idmap: {uid: [...], gid: [...]}``)."""
        idmap = params.get("idmap") or {}
        if not isinstance(idmap, t.Mapping):
            raise DomainXMLError("idmap must be a dict with the keys uid and gid (lists of start/target/count)")

        def ranges(kind: str) -> t.List[IdMapRange]:
            out = []
            for i, item in enumerate(idmap.get(kind) or []):
                try:
                    out.append(IdMapRange(int(item["start"]), int(item["target"]), int(item["count"])))
                except (KeyError, TypeError, ValueError):
                    raise DomainXMLError(
                        f"idmap.{kind}[{i}] must be a dict with the integers start, target and count, got {item!r}"
                    ) from None
            return out

        tag = params.get("tag")
        values = {name: params.get(name) for name in SPEC_OPTIONS if name != "idmap"}
        values["readonly"] = bool(values["readonly"])
        values["source"] = normal_source(values["source"])
        values["state"] = params.get("state") or "present"
        return cls(tag="" if tag is None else str(tag), uid_map=ranges("uid"), gid_map=ranges("gid"), **values)

    def validate(self) -> None:
        """Check the spec on its own (no domain, no host); raise :class:`DomainXMLError` with the
        first problem of :meth:`problems`."""
        problems = self.problems()
        if problems:
            raise DomainXMLError(problems[0])

    def problems(self) -> t.List[str]:
        """Every problem of the spec on its own (no domain, no host), in the order :meth:`validate`
        reports them; an empty list when it is fine."""
        out: t.List[str] = []
        # a share that is being removed may carry any tag an old definition has
        problem = tag_error(self.tag, strict=self.state != "absent")
        if problem:
            out.append(problem)
        if self.state not in STATES:
            return out + [f"share {self.tag!r}: state must be one of {', '.join(STATES)}, got {self.state!r}"]
        if self.state == "absent":
            return out
        if not self.source:
            out.append(f"share {self.tag!r}: source is required with state=present (an absolute host directory)")
        elif not posixpath.isabs(self.source):
            out.append(f"share {self.tag!r}: source {self.source!r} is a relative path: give an absolute host directory")
        elif ".." in self.source.split("/"):
            out.append(
                f"share {self.tag!r}: source {self.source!r} has a '..' component, whose meaning depends on symbolic "
                "links on the way: write the directory without '..'"
            )
        if self.binary_path is not None and not posixpath.isabs(self.binary_path):
            out.append(
                f"share {self.tag!r}: binary_path {self.binary_path!r} is not absolute: give the absolute path "
                "of the virtiofsd binary or wrapper"
            )
        # libvirt stores <binary path> in normal form (seen on 9.0: '/a//b' is kept as '/a/b'); a
        # spec that is not in that form would never compare equal to what libvirt keeps.
        elif self.binary_path is not None and _normal_path(self.binary_path) != self.binary_path:
            out.append(
                f"share {self.tag!r}: binary_path {self.binary_path!r} is not in normal form (libvirt would "
                f"store {_normal_path(self.binary_path)!r}): write it as {_normal_path(self.binary_path)!r}"
            )
        if self.cache is not None and self.cache not in CACHE_MODES:
            out.append(
                f"share {self.tag!r}: cache must be one of {', '.join(CACHE_MODES)} (libvirt's values), got {self.cache!r}"
            )
        if self.sandbox is not None and self.sandbox not in SANDBOX_MODES:
            out.append(f"share {self.tag!r}: sandbox must be one of {', '.join(SANDBOX_MODES)}, got {self.sandbox!r}")
        for name, minimum in (("thread_pool_size", 0), ("openfiles", 1), ("queue_size", 1)):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                out.append(f"share {self.tag!r}: {name} must be an integer >= {minimum}, got {value!r}")
            elif name in INT_MAXIMA and value > INT_MAXIMA[name][0]:
                out.append(
                    f"share {self.tag!r}: {name} {value} is larger than {INT_MAXIMA[name][0]}, the largest value "
                    f"{INT_MAXIMA[name][1]}: use a smaller number"
                )
            elif name == "queue_size":
                problem = queue_size_error(value)
                if problem:
                    out.append(f"share {self.tag!r}: {problem}")
        for kind, ranges in (("uid", self.uid_map), ("gid", self.gid_map)):
            for r in ranges:
                if r.start < 0 or r.target < 0 or r.count < 1:
                    out.append(
                        f"share {self.tag!r}: idmap {kind} range {r.to_dict()} is invalid: "
                        "start and target must be >= 0 and count >= 1"
                    )
        return out

    def features(self) -> t.List[str]:
        """Names of :mod:`_libvirt_features` entries this share needs (from the option table)."""
        if self.state != "present":
            return []
        out = ["virtiofs"]
        values = self.to_dict()
        for name, feature in OPTION_FEATURES.items():
            value = values.get(name)
            if value is None or (name == "readonly" and not value):  # readonly=false is libvirt's default
                continue
            out.append(feature)
        order = list(FEATURES)
        return sorted(out, key=order.index)  # the feature table's order

    def to_dict(self) -> t.Dict[str, t.Any]:
        """Same keys as :func:`share_to_dict` returns for an element."""
        idmap = None
        if self.uid_map or self.gid_map:
            idmap = {"uid": [r.to_dict() for r in self.uid_map], "gid": [r.to_dict() for r in self.gid_map]}
        out: t.Dict[str, t.Any] = {"tag": self.tag}
        for name in SPEC_OPTIONS:
            out[name] = idmap if name == "idmap" else getattr(self, name)
        out["readonly"] = bool(self.readonly)
        out["lock"] = None
        return out


# The largest values libvirt stores (docs/reference.md): <thread_pool size> is parsed into a C int,
# <openfiles max> into an unsigned long long; a larger number is refused by libvirt's parser only
# when the domain is defined, after the daemon, the wrappers and AppArmor were changed.
INT_MAXIMA = {
    "thread_pool_size": (2 ** 31 - 1, "libvirt stores in <thread_pool size> (a C int)"),
    "openfiles": (2 ** 64 - 1, "libvirt stores in <openfiles max> (an unsigned long long)"),
}

# QEMU's vhost-user-fs device: "queue-size property must be a power of 2" and at most
# VIRTQUEUE_MAX_SIZE (hw/virtio/vhost-user-fs.c); libvirt passes <driver queue> through.
QUEUE_SIZE_MAX = 1024


def queue_size_error(value: int) -> t.Optional[str]:
    """Why ``value`` (an int >= 1) cannot be the queue size of a virtio-fs device, or ``None``."""
    if value > QUEUE_SIZE_MAX:
        return (
            f"queue_size {value} is larger than {QUEUE_SIZE_MAX}, the largest virtqueue QEMU's vhost-user-fs "
            f"device accepts: use {QUEUE_SIZE_MAX} or less (a power of two)"
        )
    if value & (value - 1):
        lower = 1 << (value.bit_length() - 1)
        return (
            f"queue_size {value} is not a power of two, which QEMU's vhost-user-fs device requires: "
            f"use {lower} or {lower * 2}"
        )
    return None


def normal_source(path: t.Any) -> t.Any:
    """``source`` as libvirt means it: repeated slashes, ``.`` and a trailing slash folded
    (``/srv//x/./`` is ``/srv/x``). ``..`` is left alone (it is refused: its meaning depends on
    symbolic links). Anything that is not an absolute path string is returned as it is."""
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
        return path
    return _normal_path(path)


def tag_error(tag: t.Any, strict: bool = True) -> t.Optional[str]:
    """Why ``tag`` cannot be a virtio-fs mount tag, or ``None`` when it can.

    Checks that it is a non-empty string and, with ``strict``, the 36-byte limit of the device's
    tag field (UTF-8 bytes) and the characters of :data:`TAG_CHARS`. ``strict=False`` is for
    shares being removed: libvirt itself stores longer tags and any characters.
    """
    if tag is None or tag == "":
        return "tag is empty: give the mount tag (libvirt <target dir>), 1 to 36 bytes"
    if not isinstance(tag, str):
        return f"tag must be a string, got {type(tag).__name__} {tag!r}: quote it in YAML"
    if not strict:
        return None
    size = len(tag.encode("utf-8"))
    if size > TAG_MAX_BYTES:
        return (
            f"tag {tag!r} is {size} bytes long but a virtio-fs tag holds at most {TAG_MAX_BYTES} bytes: "
            "use a shorter tag"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in tag):
        return f"tag {tag!r} contains control characters: a tag may only contain {TAG_CHARS}; rename the share"
    if tag.startswith("-"):
        return (
            f"tag {tag!r} starts with '-', which mount and virtiofsd read as an option: "
            "rename the share so that it starts with a letter or digit"
        )
    if not _TAG_RE.fullmatch(tag):
        bad = "".join(sorted({c for c in tag if not _TAG_RE.fullmatch(c)}))
        return (
            f"tag {tag!r} contains {bad!r}: a tag may only contain {TAG_CHARS} (the guest writes it into "
            "/etc/fstab and mount options); rename the share"
        )
    return None


def validate_specs(specs: t.Sequence[ShareSpec]) -> None:
    """Validate each spec and reject duplicated tags."""
    seen: t.Set[str] = set()
    for spec in specs:
        spec.validate()
        if spec.tag in seen:
            raise DomainXMLError(f"tag {spec.tag!r} is given more than once: each share needs its own tag")
        seen.add(spec.tag)


# --------------------------------------------------------------------------------------------
# Reading elements
# --------------------------------------------------------------------------------------------


def _is_element(node: t.Any) -> bool:
    return isinstance(node.tag, str)


def _children(parent: t.Any, tag: t.Optional[str] = None) -> t.List[t.Any]:
    return [c for c in parent if _is_element(c) and (tag is None or c.tag == tag)]


def _child(parent: t.Any, tag: str) -> t.Any:
    for c in parent:
        if _is_element(c) and c.tag == tag:
            return c
    return None


def is_virtiofs(fs: t.Any) -> bool:
    driver = _child(fs, "driver")
    return driver is not None and driver.get("type") == "virtiofs"


def filesystem_tag(fs: t.Any) -> t.Optional[str]:
    target = _child(fs, "target")
    return None if target is None else target.get("dir")


def _describe_filesystem(fs: t.Any) -> str:
    driver = _child(fs, "driver")
    dtype = driver.get("type") if driver is not None else None
    kind = fs.get("type", "mount")
    if dtype in (None, "path", "handle") and kind == "mount":
        what = f"a 9p filesystem (driver {dtype or 'path'}, accessmode {fs.get('accessmode', 'passthrough')})"
    else:
        what = f"a <filesystem type='{kind}'>" + (f" with driver type '{dtype}'" if dtype else "")
    return what


def share_to_dict(fs: t.Any) -> t.Dict[str, t.Any]:
    """The virtio-fs ``<filesystem>`` element as a plain dict (keys of :meth:`ShareSpec.to_dict` + extras)."""
    driver = _child(fs, "driver")
    binary = _child(fs, "binary")
    source = _child(fs, "source")
    idmap_el = _child(fs, "idmap")
    alias = _child(fs, "alias")
    boot = _child(fs, "boot")

    def bchild(tag: str, attr: str) -> t.Optional[str]:
        if binary is None:
            return None
        el = _child(binary, tag)
        return None if el is None else el.get(attr)

    lock = None
    if binary is not None and _child(binary, "lock") is not None:
        lock_el = _child(binary, "lock")
        lock = {"posix": lock_el.get("posix"), "flock": lock_el.get("flock")}
    idmap = None
    if idmap_el is not None:
        idmap = {
            kind: [
                {k: _int_or_none(e.get(k)) for k in ("start", "target", "count")}
                for e in _children(idmap_el, kind)
            ]
            for kind in ("uid", "gid")
        }
    return {
        "tag": filesystem_tag(fs),
        "source": None if source is None else source.get("dir"),
        "source_socket": None if source is None else source.get("socket"),
        "binary_path": None if binary is None else binary.get("path"),
        "readonly": _child(fs, "readonly") is not None,
        "cache": bchild("cache", "mode"),
        "sandbox": bchild("sandbox", "mode"),
        "xattr": None if binary is None else _from_onoff(binary.get("xattr")),
        "thread_pool_size": _int_or_none(bchild("thread_pool", "size")),
        "openfiles": _int_or_none(bchild("openfiles", "max")),
        "queue_size": None if driver is None else _int_or_none(driver.get("queue")),
        "idmap": idmap,
        "ats": None if driver is None else _from_onoff(driver.get("ats")),
        "iommu": None if driver is None else _from_onoff(driver.get("iommu")),
        "packed": None if driver is None else _from_onoff(driver.get("packed")),
        "lock": lock,
        "alias": None if alias is None else alias.get("name"),
        "boot_order": None if boot is None else _int_or_none(boot.get("order")),
    }


def canonical(elem: t.Any, ignore: t.Sequence[str] = IGNORED_CHILDREN) -> t.Tuple[t.Any, ...]:
    """A hashable form of ``elem`` for semantic comparison.

    Ignores comments, whitespace, attribute order, child order between different tags (the
    order of same-tag children is kept), the children in ``ignore`` and libvirt's defaults.
    """
    attrs = dict(elem.attrib)
    for key, value in ELEMENT_DEFAULTS.get(elem.tag, {}).items():
        attrs.setdefault(key, value)
    kids = [canonical(c, ignore) for c in elem if _is_element(c) and c.tag not in ignore]
    kids.sort(key=lambda k: k[0])
    return (elem.tag, tuple(sorted(attrs.items())), (elem.text or "").strip(), tuple(kids))


def _managed_view(d: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    return {k: d.get(k) for k in MANAGED_KEYS}


def _describe_changes(before: t.Mapping[str, t.Any], after: t.Mapping[str, t.Any]) -> t.List[str]:
    out = []
    for key in MANAGED_KEYS:
        if before.get(key) != after.get(key):
            out.append(f"{key} {before.get(key)!r} -> {after.get(key)!r}")
    return out


# --------------------------------------------------------------------------------------------
# Whitespace-preserving element insertion/removal
# --------------------------------------------------------------------------------------------


class _Layout:
    """Keeps inserted elements indented like their neighbours (when the document is indented)."""

    def __init__(self, pretty: bool = False, unit: str = "  ", detached: t.Any = None, detached_indent: str = "") -> None:
        self.pretty = pretty
        self.unit = unit
        # a copy of an element that is edited before it replaces the original in the document
        self.detached = detached
        self.detached_indent = detached_indent

    @classmethod
    def for_root(cls, root: t.Any) -> "_Layout":
        text = root.text or ""
        if _children(root) and "\n" in text and not text.strip():
            return cls(True, text.rsplit("\n", 1)[1] or "  ")
        return cls(False)

    def for_copy(self, original: t.Any, copy_: t.Any) -> "_Layout":
        return _Layout(self.pretty, self.unit, copy_, self.own_indent(original))

    @staticmethod
    def _ws_before(parent: t.Any, index: int) -> t.Optional[str]:
        if index == 0:
            return parent.text
        return parent[index - 1].tail

    def own_indent(self, elem: t.Any) -> str:
        parent = elem.getparent()
        if parent is None:
            return self.detached_indent if elem is self.detached else ""
        ws = self._ws_before(parent, parent.index(elem)) or ""
        return ws.rsplit("\n", 1)[1] if "\n" in ws else ""

    def child_indent(self, parent: t.Any) -> str:
        if len(parent):
            ws = parent.text or ""
            if "\n" in ws and not ws.strip():
                return ws.rsplit("\n", 1)[1]
        return self.own_indent(parent) + self.unit

    def format_new(self, elem: t.Any, indent: str) -> None:
        kids = list(elem)
        if not kids:
            return
        inner = indent + self.unit
        elem.text = "\n" + inner
        for i, kid in enumerate(kids):
            self.format_new(kid, inner)
            kid.tail = "\n" + (inner if i < len(kids) - 1 else indent)

    def insert(self, parent: t.Any, index: int, child: t.Any) -> None:
        count = len(parent)
        if self.pretty:
            self.format_new(child, self.child_indent(parent))
        if count == 0:
            if self.pretty and not (parent.text or "").strip():
                parent.text = "\n" + self.child_indent(parent)
                child.tail = "\n" + self.own_indent(parent)
            parent.insert(0, child)
        elif index >= count:
            last = parent[count - 1]
            if self.pretty:
                child.tail = last.tail
                last.tail = self._ws_before(parent, count - 1)
            parent.append(child)
        else:
            if self.pretty:
                child.tail = self._ws_before(parent, index)
            parent.insert(index, child)

    def insert_ordered(self, parent: t.Any, child: t.Any, order: t.Sequence[str]) -> None:
        """Insert after the last child that libvirt prints before (or as) ``child.tag``."""
        rank = order.index(child.tag) if child.tag in order else len(order)
        index = 0
        for i, node in enumerate(parent):
            if _is_element(node) and node.tag in order and order.index(node.tag) <= rank:
                index = i + 1
        if index == 0 and child.tag not in order:
            index = len(parent)
        self.insert(parent, index, child)

    def remove(self, child: t.Any) -> None:
        parent = child.getparent()
        index = parent.index(child)
        if (child.tail or "").strip():
            _remove_keeping_tail(child, refuse_cdata=True)  # text after it belongs to the parent
            return
        if index == len(parent) - 1:
            # keep the closing indentation that followed the removed element
            if index == 0:
                # the parent becomes empty: print it as <parent/> again
                if not (parent.text or "").strip():
                    parent.text = None
            else:
                prev = parent[index - 1]
                if not (prev.tail or "").strip():
                    prev.tail = child.tail
        parent.remove(child)


def _remove_keeping_tail(child: t.Any, refuse_cdata: bool = False) -> None:
    """Remove ``child`` from its parent but keep the text after it (its lxml ``tail``, which is
    the parent's content): it is appended to the previous sibling's tail, or to the parent's
    text when ``child`` is the first node. A CDATA section there would become plain text, so
    with ``refuse_cdata`` it raises :class:`DomainXMLError` instead."""
    parent = child.getparent()
    tail = child.tail
    if tail and tail.strip():
        if refuse_cdata:
            whole = etree.tostring(child)
            if b"<![CDATA[" in whole[len(etree.tostring(child, with_tail=False)):]:
                what = f"share {filesystem_tag(child)!r}" if child.tag == "filesystem" else f"<{child.tag}>"
                raise DomainXMLError(
                    f"{what} is followed by a CDATA section inside <{parent.tag}> that removing it would turn into "
                    "plain text; nothing was written: move the CDATA section into an element that stays (for "
                    "example <description>) or remove it, then run again"
                )
        index = parent.index(child)
        if index > 0:
            prev = parent[index - 1]
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(child)


def _ensure_child(layout: _Layout, parent: t.Any, tag: str, order: t.Sequence[str]) -> t.Any:
    el = _child(parent, tag)
    if el is None:
        el = etree.Element(tag)
        layout.insert_ordered(parent, el, order)
    return el


def _drop_child(layout: _Layout, parent: t.Any, tag: str) -> None:
    for el in _children(parent, tag):
        layout.remove(el)


def _set_attr(el: t.Any, name: str, value: t.Optional[str]) -> None:
    if value is None:
        if name in el.attrib:
            del el.attrib[name]
    elif el.get(name) != value:
        el.set(name, value)


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def _copy_tree(tree: t.Any) -> t.Any:
    """A deep copy of a document, comments and PIs after the root element in their order.

    lxml's ``copy.deepcopy`` of an ElementTree reverses the nodes that follow the root element
    (seen with lxml 6.1 / libxml2 2.14); they are put back in the original's order here.
    """
    new = copy.deepcopy(tree)
    want = [etree.tostring(n) for n in tree.getroot().itersiblings()]
    nodes = list(new.getroot().itersiblings())
    if [etree.tostring(n) for n in nodes] != want:
        by_text: t.Dict[bytes, t.List[t.Any]] = {}
        for n in nodes:
            by_text.setdefault(etree.tostring(n), []).append(n)
        ordered = [by_text[w].pop(0) for w in want]
        for n in reversed(ordered):
            new.getroot().addnext(n)  # moves n to right after the root element
    return new


def _strip_owned(root: t.Any, tags: t.Optional[t.Collection[str]], empty: t.Callable[[t.Any], bool]) -> None:
    """Remove the owned elements from ``root`` (a copy): the virtio-fs filesystems (those with
    a tag in ``tags``, or all when ``tags`` is None), ``memoryBacking/source`` and
    ``memoryBacking/access``, then ``<memoryBacking>``/``<devices>`` when ``empty`` says so."""
    devices = _child(root, "devices")
    if devices is not None:
        for fs in _children(devices, "filesystem"):
            if is_virtiofs(fs) and (tags is None or filesystem_tag(fs) in tags):
                _remove_keeping_tail(fs)  # text after it is not owned: a lost tail shows as a difference
    mb = _child(root, "memoryBacking")
    if mb is not None:
        for c in _children(mb):
            if c.tag in ("source", "access"):
                _remove_keeping_tail(c)
    for tag in ("memoryBacking", "devices"):
        el = _child(root, tag)
        if el is not None and empty(el):
            _remove_keeping_tail(el)


# virsh define reads at most this much (VSH_MAX_XML_FILE); a larger file is no domain definition
XML_FILE_MAX_BYTES = 10 * 1024 * 1024
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def read_xml_file(path: str) -> bytes:
    """The bytes of the domain XML file ``path``: a regular file of at most
    :data:`XML_FILE_MAX_BYTES` (checked before it is opened: reading a FIFO would block)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DomainXMLError(f"cannot read xml_file {path!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "not a regular file")
        raise DomainXMLError(f"xml_file {path!r} is {what}, not a regular file: give the path of a domain XML file")
    if st.st_size > XML_FILE_MAX_BYTES:
        raise DomainXMLError(
            f"xml_file {path!r} is {st.st_size} bytes, more than the {XML_FILE_MAX_BYTES} bytes (10 MiB) virsh "
            "define reads: it is not a domain definition; check the path"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(XML_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise DomainXMLError(f"cannot read xml_file {path!r}: {exc.strerror}") from None
    if len(data) > XML_FILE_MAX_BYTES:  # grew since the stat
        raise DomainXMLError(
            f"xml_file {path!r} is more than the {XML_FILE_MAX_BYTES} bytes (10 MiB) virsh define reads: "
            "it is not a domain definition; check the path"
        )
    return data


BOM = b"\xef\xbb\xbf"
_DECLARATION_RE = re.compile(rb"<\?xml[ \t\r\n][^?]*\?>")  # no '?' inside: version, encoding, standalone
_LEADING_SPACE_RE = re.compile(rb"[ \t\r\n]*")
_SPACE = b" \t\r\n"


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


@dataclass(frozen=True)
class FileStyle:
    """How a document's bytes are written around its tree, as read from a file, so that a
    patched file is written back in its own style (its diff shows only the real change).

    * ``bom``: the file starts with a UTF-8 byte order mark;
    * ``declaration``: the XML declaration's own text (quotes, spelling of the encoding,
      ``standalone``), or None when the file has none;
    * ``lead``/``trailing``: the whitespace after the declaration (or at the start) and at the end;
    * ``crlf``: every line break of the file is CR LF. A file that mixes line endings (CR LF with
      LF or CR alone) is written with LF throughout: there is no one style to keep.

    The texts are kept with LF line breaks; :meth:`DomainXML.to_bytes` turns them (and the
    whole document) into CR LF when ``crlf``.
    """

    bom: bool = False
    declaration: t.Optional[bytes] = None
    lead: bytes = b""
    trailing: bytes = b""
    crlf: bool = False

    @classmethod
    def of(cls, data: bytes) -> "FileStyle":
        bom = data.startswith(BOM)
        body = data[len(BOM):] if bom else data
        m = _DECLARATION_RE.match(body)
        declaration = m.group(0) if m else None
        start = m.end() if m else 0
        lead = _LEADING_SPACE_RE.match(body, start)
        end = max(len(body.rstrip(_SPACE)), lead.end())
        crlfs = data.count(b"\r\n")
        return cls(
            bom=bom,
            declaration=None if declaration is None else _lf(declaration),
            lead=_lf(lead.group(0)),
            trailing=_lf(body[end:]),
            crlf=crlfs > 0 and data.count(b"\n") == crlfs and data.count(b"\r") == crlfs,
        )


class DomainXML:
    """A parsed domain definition. Mutating methods keep unrelated content untouched."""

    def __init__(self, tree: t.Any, style: t.Optional[FileStyle] = None) -> None:
        self.tree = tree
        self.root = tree.getroot()
        self.style = style if style is not None else FileStyle()
        self.layout = _Layout.for_root(self.root)

    @property
    def declaration(self) -> bool:
        return self.style.declaration is not None

    # -- parsing / serialising ---------------------------------------------------------------

    @classmethod
    def from_string(cls, text: t.Union[str, bytes], what: str = "domain XML") -> "DomainXML":
        require_lxml()
        data = text.encode("utf-8") if isinstance(text, str) else text
        # strip_cdata=False: a CDATA section stays one (lxml writes it back as <![CDATA[...]]>,
        # not as escaped text); the element's .text is its content either way
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, remove_blank_text=False, huge_tree=False, strip_cdata=False
        )
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise DomainXMLError(f"{what} is not well-formed XML: {exc}. Fix the XML (for example with xmllint) and retry") from None
        if root.tag != "domain":
            raise DomainXMLError(
                f"{what} is not a libvirt domain definition: the root element is <{root.tag}>, expected <domain>"
            )
        return cls(root.getroottree(), FileStyle.of(data))

    @classmethod
    def from_file(cls, path: str) -> "DomainXML":
        return cls.from_string(read_xml_file(path), what=f"xml_file {path!r}")

    @property
    def encoding(self) -> str:
        return (self.tree.docinfo.encoding or "UTF-8") if self.declaration else "UTF-8"

    def to_bytes(self) -> bytes:
        """The whole document in the style it was read in (:class:`FileStyle`: byte order mark,
        the XML declaration's own text, the whitespace before and after, CR LF or LF), then the
        DOCTYPE, the comments around the root element (one per line, as libvirt writes its
        files) and the root element."""
        encoding = self.encoding
        style = self.style
        parts = []
        if self.tree.docinfo.doctype:
            parts.append(self.tree.docinfo.doctype.encode(encoding))
        parts.extend(
            etree.tostring(node, encoding=encoding, xml_declaration=False)
            for node in reversed(list(self.root.itersiblings(preceding=True)))
        )
        parts.append(etree.tostring(self.root, encoding=encoding, xml_declaration=False, with_tail=False))
        parts.extend(
            etree.tostring(node, encoding=encoding, xml_declaration=False) for node in self.root.itersiblings()
        )
        # the parser turned every line break into LF and lxml writes a CR of the tree as &#13;:
        # each LF of the text is a line break, so CR LF output is a replacement
        out = (style.declaration or b"") + style.lead + b"\n".join(parts) + style.trailing
        if style.crlf:
            out = out.replace(b"\n", b"\r\n")
        return (BOM if style.bom else b"") + out

    def to_string(self) -> str:
        return self.to_bytes().decode(self.encoding)

    def copy(self) -> "DomainXML":
        return DomainXML(_copy_tree(self.tree), self.style)

    # -- facts -------------------------------------------------------------------------------

    @property
    def name(self) -> t.Optional[str]:
        el = _child(self.root, "name")
        return None if el is None else (el.text or "").strip()

    @property
    def uuid(self) -> t.Optional[str]:
        el = _child(self.root, "uuid")
        return None if el is None else (el.text or "").strip()

    @property
    def devices(self) -> t.Any:
        return _child(self.root, "devices")

    def filesystems(self) -> t.List[t.Any]:
        devices = self.devices
        return [] if devices is None else _children(devices, "filesystem")

    def virtiofs_filesystems(self) -> t.List[t.Any]:
        return [fs for fs in self.filesystems() if is_virtiofs(fs)]

    def find_share(self, tag: str) -> t.Any:
        found = [fs for fs in self.virtiofs_filesystems() if filesystem_tag(fs) == tag]
        if len(found) > 1:
            raise DomainXMLError(
                f"the domain has {len(found)} virtio-fs filesystems with tag {tag!r}: libvirt allows one; "
                "remove the duplicates from the definition first"
            )
        return found[0] if found else None

    def shares(self) -> t.List[t.Dict[str, t.Any]]:
        return [share_to_dict(fs) for fs in self.virtiofs_filesystems()]

    def memory_status(self) -> t.Dict[str, t.Any]:
        return memory_status(self.root)

    def lock_warnings(self, skip_tags: t.Collection[str] = ()) -> t.List[str]:
        out = []
        for fs in self.virtiofs_filesystems():
            tag = filesystem_tag(fs)
            d = share_to_dict(fs)
            if d["lock"] is not None and tag not in skip_tags:
                out.append(
                    f"share {tag!r} has <lock posix={d['lock']['posix']!r} flock={d['lock']['flock']!r}>: "
                    "the Rust virtiofsd rejects locking options and the domain will not start with it; "
                    "manage the share with this module to drop it"
                )
        return out

    # -- comparison helpers ------------------------------------------------------------------

    def owned_canonical(self) -> t.Tuple[t.Any, ...]:
        shares = sorted(
            ((filesystem_tag(fs) or "", canonical(fs)) for fs in self.virtiofs_filesystems()),
            key=lambda p: p[0],
        )
        mb = _child(self.root, "memoryBacking")
        owned_mb: t.Tuple[t.Any, ...] = ()
        if mb is not None:
            owned_mb = tuple(canonical(c) for c in mb if _is_element(c) and c.tag in ("source", "access"))
        return (tuple(shares), owned_mb)

    def outside_c14n(self, tags: t.Optional[t.Collection[str]] = None) -> bytes:
        """Canonical XML (C14N 2.0) of everything outside the owned subtree.

        Removes the virtio-fs filesystems (those with a tag in ``tags``, or all when ``tags`` is
        None), ``memoryBacking/source``, ``memoryBacking/access``, then an empty
        ``<memoryBacking/>`` or ``<devices/>``, and strips whitespace-only text.
        """
        root = copy.deepcopy(self.root)
        _strip_owned(root, tags, lambda el: not _children(el))
        for el in root.iter():
            if el.text is not None and not el.text.strip():
                el.text = None
            if el.tail is not None and not el.tail.strip():
                el.tail = None
        return etree.tostring(root, method="c14n2", strip_text=True)


# --------------------------------------------------------------------------------------------
# Faithful write-back
# --------------------------------------------------------------------------------------------

# Encodings whose documents to_bytes() writes back byte-compatible (one byte per ASCII char).
_KEEPABLE_ENCODINGS = ("UTF-8", "US-ASCII", "ASCII", "ISO-8859-1", "LATIN1", "ISO-8859-15")
_FAITHFUL_FIX = "convert it to plain UTF-8 XML without a DTD (for example `xmllint --noent --dropdtd --encode UTF-8 FILE`)"


def _unkeepable(doc: DomainXML, what: str) -> t.Optional[str]:
    """Why ``doc`` cannot be written back as it was read, or None."""
    info = doc.tree.docinfo
    dtd = info.internalDTD
    if dtd is not None and dtd.name is not None and dtd.name != info.root_name:
        return (f"{what} declares <!DOCTYPE {dtd.name}> but its root element is <{info.root_name}>: the DOCTYPE must "
                f"name the root element (<!DOCTYPE {info.root_name}>) or be removed, and the module would write it back "
                "naming the root element")
    if dtd is not None:
        entities = [e.name for e in dtd.iterentities()]
        if entities:
            return f"{what} declares DTD entities ({', '.join(entities)}) that would be lost or expanded when it is written back"
        # to_bytes() writes the DOCTYPE line only; lxml's own serialisation shows a subset
        shown = etree.tostring(doc.tree)
        shown = shown[shown.find(b"<!DOCTYPE"):]
        if not shown.startswith(info.doctype.encode("utf-8") + b"\n"):
            return f"{what} has an internal DTD subset ([...] in <!DOCTYPE>) that would be lost when it is written back"
    entity = next(iter(doc.root.iter(etree.Entity)), None)
    if entity is not None:
        return f"{what} uses the entity reference {entity.text} that the module cannot keep"
    if (info.encoding or "UTF-8").upper() not in _KEEPABLE_ENCODINGS:
        return f"{what} is encoded in {info.encoding}, which the module does not write back"
    return None


def _document_c14n(doc: DomainXML) -> bytes:
    """C14N 2.0 of the whole document (comments and PIs around the root included) without the
    owned elements (all virtio-fs filesystems, memoryBacking source/access; then an empty
    ``<memoryBacking/>`` or ``<devices/>``). Whitespace-only text between elements (the
    indentation the patcher adjusts) is dropped; all other text is kept exactly."""
    return etree.tostring(_without_owned(doc), method="c14n2")


def _without_owned(doc: DomainXML) -> t.Any:
    """A copy of the document's tree without the owned elements and without whitespace-only text
    between elements (what :func:`_document_c14n` and :func:`_cdata_sections` compare)."""
    tree = _copy_tree(doc.tree)
    root = tree.getroot()
    _strip_owned(root, None, lambda el: len(el) == 0 and not (el.text or "").strip() and not el.attrib)
    for el in root.iter():
        if len(el) and el.text is not None and not el.text.strip():
            el.text = None
        if el is not root and el.tail is not None and not el.tail.strip():
            el.tail = None
    return tree


# A CDATA section as lxml writes it (its content cannot hold "]]>"). Comments and processing
# instructions are written verbatim, so text in them that looks like a section is the same
# before and after; element text outside a section has its "<" escaped and cannot match.
_CDATA_RE = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)


def _cdata_sections(doc: DomainXML) -> t.List[bytes]:
    """The CDATA sections of the document outside the owned elements, in document order (C14N
    2.0 writes a section as escaped text, so :func:`_document_c14n` cannot tell them apart).
    Whitespace-only text between elements is dropped first, as there."""
    return _CDATA_RE.findall(etree.tostring(_without_owned(doc), encoding="UTF-8"))


def faithful_bytes(before: DomainXML, after: DomainXML, what: str = "domain XML") -> bytes:
    """The bytes to write for ``after`` (``before`` patched), checked to be faithful.

    The output is re-parsed; it must equal ``before`` canonically (C14N 2.0) outside the owned
    elements, carry the owned elements of ``after`` unchanged, and keep the DOCTYPE and the
    file's style (:class:`FileStyle`: byte order mark, XML declaration, line endings). A
    document that cannot be written back so (DTD entities or an internal subset, entity
    references, an encoding the serialiser does not keep) raises
    :class:`DomainXMLError` naming the problem and the fix; nothing has been written then.
    """
    require_lxml()
    problem = _unkeepable(before, what)
    if problem:
        raise DomainXMLError(f"{problem}; nothing was written: {_FAITHFUL_FIX}")
    data = after.to_bytes()
    try:
        again = DomainXML.from_string(data, what=what)
    except DomainXMLError as exc:
        raise DomainXMLError(f"{what} cannot be written back faithfully ({exc}); nothing was written: {_FAITHFUL_FIX}") from None
    differs = []
    if _document_c14n(again) != _document_c14n(before):
        differs.append("content outside the virtio-fs shares and memoryBacking")
    elif _cdata_sections(again) != _cdata_sections(before):
        differs.append("the CDATA sections")
    if again.owned_canonical() != after.owned_canonical():
        differs.append("the patched shares")
    if again.tree.docinfo.doctype != before.tree.docinfo.doctype:
        differs.append("the DOCTYPE")
    if again.style != before.style:
        differs.append("the byte order mark, the XML declaration or the line endings")
    if differs:
        raise DomainXMLError(
            f"{what} cannot be written back faithfully: re-reading the patched document changes "
            f"{' and '.join(differs)}; nothing was written: {_FAITHFUL_FIX}"
        )
    return data


# --------------------------------------------------------------------------------------------
# Shared memory
# --------------------------------------------------------------------------------------------


def memory_status(root: t.Any) -> t.Dict[str, t.Any]:
    """Summary of the domain's memory backing as far as vhost-user (virtio-fs) cares."""
    mb = _child(root, "memoryBacking")
    source = access = None
    hugepages = False
    if mb is not None:
        src = _child(mb, "source")
        acc = _child(mb, "access")
        source = None if src is None else src.get("type")
        access = None if acc is None else acc.get("mode")
        hugepages = _child(mb, "hugepages") is not None
    cells = []
    cpu = _child(root, "cpu")
    numa = None if cpu is None else _child(cpu, "numa")
    if numa is not None:
        cells = _children(numa, "cell")
    private = [c.get("id", str(i)) for i, c in enumerate(cells) if c.get("memAccess") == "private"]
    default_cells = [c for c in cells if c.get("memAccess") not in ("shared", "private")]
    if cells:
        shared = not private and (not default_cells or (access == "shared" and source != "anonymous"))
    else:
        shared = access == "shared" and source != "anonymous"
    return {
        "shared": bool(shared),
        "source": source,
        "access": access,
        "hugepages": hugepages,
        "numa_cells": len(cells),
        "numa_shared_cells": len([c for c in cells if c.get("memAccess") == "shared"]),
        "numa_private_cells": private,
    }


def _check_numa_private(status: t.Mapping[str, t.Any]) -> None:
    if status["numa_private_cells"] and not status["shared"]:
        raise DomainXMLError(
            "virtio-fs needs shared guest memory, but NUMA cell(s) "
            + ", ".join(status["numa_private_cells"])
            + " have memAccess='private'; this module does not change <numa>: set memAccess='shared' on "
            "those <cell> elements (or remove memAccess), or use memory_backing=skip and arrange shared memory yourself"
        )


def _ensure_shared_memory(doc: DomainXML, result: "PatchResult") -> None:
    status = memory_status(doc.root)
    if status["shared"]:
        return
    _check_numa_private(status)
    layout = doc.layout
    mb = _child(doc.root, "memoryBacking")
    if mb is None:
        mb = etree.Element("memoryBacking")
        layout.insert_ordered(doc.root, mb, DOMAIN_ORDER)
    src = _child(mb, "source")
    if not status["hugepages"] and (src is None or src.get("type") == "anonymous"):
        if src is None:
            src = etree.Element("source")
            src.set("type", "memfd")
            layout.insert_ordered(mb, src, MEMORY_BACKING_ORDER)
            result.actions.append("add <memoryBacking><source type='memfd'/> (shared memory for virtio-fs)")
        else:
            src.set("type", "memfd")
            result.actions.append("change <memoryBacking><source type='anonymous'/> to type='memfd' (virtio-fs needs fd-backed memory)")
        if not status["numa_cells"]:
            result.features.append("memfd")
    acc = _child(mb, "access")
    if acc is None:
        acc = etree.Element("access")
        acc.set("mode", "shared")
        layout.insert_ordered(mb, acc, MEMORY_BACKING_ORDER)
        result.actions.append("add <memoryBacking><access mode='shared'/>")
    elif acc.get("mode") != "shared":
        result.actions.append(f"change <memoryBacking><access mode='{acc.get('mode')}'/> to mode='shared'")
        acc.set("mode", "shared")
    result.memory_changed = True
    result.changed = True


# --------------------------------------------------------------------------------------------
# Applying shares
# --------------------------------------------------------------------------------------------


@dataclass
class PatchResult:
    changed: bool = False
    actions: t.List[str] = field(default_factory=list)
    warnings: t.List[str] = field(default_factory=list)
    added: t.List[str] = field(default_factory=list)
    updated: t.List[str] = field(default_factory=list)
    removed: t.List[str] = field(default_factory=list)
    memory_changed: bool = False
    features: t.List[str] = field(default_factory=list)
    memory_backing: t.Dict[str, t.Any] = field(default_factory=dict)


def build_filesystem(spec: ShareSpec) -> t.Any:
    """A new ``<filesystem>`` element for ``spec`` (lxml element API only)."""
    require_lxml()
    fs = etree.Element("filesystem")
    fs.set("type", "mount")
    fs.set("accessmode", "passthrough")
    _apply_spec(_Layout(), fs, spec)
    return fs


def _apply_spec(layout: _Layout, fs: t.Any, spec: ShareSpec) -> None:
    """Make ``fs`` describe ``spec``; unmanaged content (address, alias, boot, ...) is kept."""
    if fs.get("type") not in (None, "mount"):
        fs.set("type", "mount")
    if fs.get("accessmode") not in (None, "passthrough"):
        fs.set("accessmode", "passthrough")

    driver = _ensure_child(layout, fs, "driver", FILESYSTEM_ORDER)
    _set_attr(driver, "type", "virtiofs")
    _set_attr(driver, "queue", None if spec.queue_size is None else str(spec.queue_size))
    _set_attr(driver, "ats", _onoff(spec.ats))
    _set_attr(driver, "iommu", _onoff(spec.iommu))
    _set_attr(driver, "packed", _onoff(spec.packed))

    binary_wanted = any(
        v is not None for v in (spec.binary_path, spec.xattr, spec.cache, spec.sandbox, spec.thread_pool_size, spec.openfiles)
    )
    binary = _child(fs, "binary")
    if binary is None and binary_wanted:
        binary = _ensure_child(layout, fs, "binary", FILESYSTEM_ORDER)
    if binary is not None:
        _set_attr(binary, "path", spec.binary_path)
        _set_attr(binary, "xattr", _onoff(spec.xattr))
        for tag, attr, value in (
            ("cache", "mode", spec.cache),
            ("sandbox", "mode", spec.sandbox),
            ("thread_pool", "size", None if spec.thread_pool_size is None else str(spec.thread_pool_size)),
            ("openfiles", "max", None if spec.openfiles is None else str(spec.openfiles)),
        ):
            if value is None:
                _drop_child(layout, binary, tag)
            else:
                el = _ensure_child(layout, binary, tag, BINARY_ORDER)
                _set_attr(el, attr, value)
        _drop_child(layout, binary, "lock")
        if not binary_wanted and not len(binary.attrib) and not _children(binary):
            layout.remove(binary)

    if spec.uid_map or spec.gid_map:
        wanted = [("uid", r) for r in spec.uid_map] + [("gid", r) for r in spec.gid_map]
        idmap = _child(fs, "idmap")
        current = []
        if idmap is not None:
            current = [(e.tag, (e.get("start"), e.get("target"), e.get("count"))) for e in _children(idmap)]
        target = [(k, (str(r.start), str(r.target), str(r.count))) for k, r in wanted]
        if sorted(current, key=lambda p: p[0]) != sorted(target, key=lambda p: p[0]) or idmap is None:
            if idmap is not None:
                layout.remove(idmap)
            idmap = etree.Element("idmap")
            for kind, r in wanted:
                e = etree.SubElement(idmap, kind)
                e.set("start", str(r.start))
                e.set("target", str(r.target))
                e.set("count", str(r.count))
            layout.insert_ordered(fs, idmap, FILESYSTEM_ORDER)
    else:
        _drop_child(layout, fs, "idmap")

    sources = _children(fs, "source")
    for extra in sources[1:]:
        layout.remove(extra)
    source = _ensure_child(layout, fs, "source", FILESYSTEM_ORDER)
    for name in list(source.attrib):
        if name != "dir":
            del source.attrib[name]
    if normal_source(source.get("dir")) != spec.source:  # '/srv/x/' already is the share '/srv/x'
        _set_attr(source, "dir", spec.source)

    target = _ensure_child(layout, fs, "target", FILESYSTEM_ORDER)
    _set_attr(target, "dir", spec.tag)

    if spec.readonly:
        _ensure_child(layout, fs, "readonly", FILESYSTEM_ORDER)
    else:
        _drop_child(layout, fs, "readonly")


# Domain types whose driver runs virtio-fs shares: QEMU's (and libvirt's test driver, which
# accepts any device and is only used for dry runs)
VIRTIOFS_DOMAIN_TYPES = ("kvm", "qemu", "test")


def check_domain_type(doc: "DomainXML", specs: t.Sequence[ShareSpec], what: str = "the domain") -> None:
    """Refuse to add or update virtio-fs shares in a domain of another hypervisor (lxc, xen, ...):
    only QEMU runs the vhost-user-fs device. Removing shares is allowed everywhere."""
    dtype = doc.root.get("type")
    if dtype is None or dtype in VIRTIOFS_DOMAIN_TYPES or not any(s.state == "present" for s in specs):
        return
    raise DomainXMLError(
        f"{what} is a <domain type='{dtype}'>, but virtio-fs shares need a QEMU domain (type 'kvm' or 'qemu'): "
        "libvirt's other drivers have no vhost-user-fs device; use a KVM/QEMU domain or drop the share"
    )


def _check_tag_conflicts(doc: DomainXML, specs: t.Sequence[ShareSpec]) -> None:
    wanted = {s.tag for s in specs if s.state == "present"}
    for fs in doc.filesystems():
        tag = filesystem_tag(fs)
        if tag in wanted and not is_virtiofs(fs):
            raise DomainXMLError(
                f"tag {tag!r} is already used by {_describe_filesystem(fs)} in this domain: "
                "choose another tag, or remove that <filesystem> first"
            )
    for spec in specs:
        doc.find_share(spec.tag)  # raises on duplicated virtio-fs tags


def apply_shares(
    doc: DomainXML,
    specs: t.Sequence[ShareSpec],
    exclusive: bool = False,
    memory_backing: str = "auto",
) -> PatchResult:
    """Make ``doc`` (modified in place) contain ``specs``; return what changed.

    ``exclusive`` removes every virtio-fs share whose tag is not in ``specs``. With
    ``memory_backing='auto'`` shared memory is ensured whenever a share is present.
    Raises :class:`DomainXMLError` before modifying anything when the input is invalid.
    """
    require_lxml()
    if memory_backing not in MEMORY_BACKING_MODES:
        raise DomainXMLError(f"memory_backing must be one of {', '.join(MEMORY_BACKING_MODES)}, got {memory_backing!r}")
    validate_specs(specs)
    _check_tag_conflicts(doc, specs)
    if memory_backing == "auto" and any(s.state == "present" for s in specs):
        _check_numa_private(doc.memory_status())

    result = PatchResult()
    result.memory_backing["before"] = doc.memory_status()
    layout = doc.layout
    managed = {s.tag for s in specs}

    for spec in specs:
        existing = doc.find_share(spec.tag)
        if spec.state == "absent":
            if existing is not None:
                layout.remove(existing)
                result.removed.append(spec.tag)
                result.actions.append(f"remove share {spec.tag!r}")
            continue
        result.features.extend(spec.features())
        if existing is None:
            fs = build_filesystem(spec)
            devices = doc.devices
            if devices is None:
                devices = etree.Element("devices")
                layout.insert_ordered(doc.root, devices, DOMAIN_ORDER)
            layout.insert_ordered(devices, fs, DEVICES_ORDER)
            result.added.append(spec.tag)
            result.actions.append(f"add share {spec.tag!r} (source {spec.source})")
            continue
        candidate = copy.deepcopy(existing)
        candidate.tail = existing.tail
        before = share_to_dict(existing)
        _apply_spec(layout.for_copy(existing, candidate), candidate, spec)
        if canonical(candidate) != canonical(existing):
            if before["lock"] is not None:
                result.warnings.append(
                    f"share {spec.tag!r}: removed <lock> (the Rust virtiofsd rejects locking options)"
                )
            existing.getparent().replace(existing, candidate)
            result.updated.append(spec.tag)
            changes = _describe_changes(before, share_to_dict(candidate)) or ["normalised"]
            result.actions.append(f"update share {spec.tag!r}: " + ", ".join(changes))

    if exclusive:
        for fs in doc.virtiofs_filesystems():
            tag = filesystem_tag(fs)
            if tag not in managed:
                layout.remove(fs)
                result.removed.append(tag or "")
                result.actions.append(f"remove share {tag!r} (exclusive)")

    result.changed = bool(result.added or result.updated or result.removed)
    if any(s.state == "present" for s in specs):
        if memory_backing == "auto":
            _ensure_shared_memory(doc, result)
        elif not doc.memory_status()["shared"]:
            result.warnings.append(
                "memory_backing=skip but the domain has no shared memory: libvirt refuses virtio-fs "
                "without it ('virtiofs' requires shared memory); use memory_backing=auto or add "
                "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
            )
    result.warnings.extend(doc.lock_warnings(skip_tags=managed))
    result.memory_backing["after"] = doc.memory_status()
    seen: t.List[str] = []
    for name in result.features:
        if name not in seen:
            seen.append(name)
    result.features = seen
    return result


# --------------------------------------------------------------------------------------------
# Verification and diffs
# --------------------------------------------------------------------------------------------


def verify_converged(
    wanted: DomainXML,
    actual: DomainXML,
    specs: t.Sequence[ShareSpec],
    exclusive: bool = False,
    memory_backing: str = "auto",
) -> t.List[str]:
    """Compare what was defined with what libvirt stored; return human-readable differences."""
    problems = []
    for spec in specs:
        got = actual.find_share(spec.tag)
        if spec.state == "absent":
            if got is not None:
                problems.append(f"share {spec.tag!r} is still in the definition after removing it")
            continue
        if got is None:
            problems.append(f"share {spec.tag!r} is missing from the definition libvirt stored")
            continue
        want_el = wanted.find_share(spec.tag)
        want = _managed_view(share_to_dict(want_el)) if want_el is not None else _managed_view(spec.to_dict())
        have = _managed_view(share_to_dict(got))
        if want != have:
            problems.append(
                f"libvirt stored share {spec.tag!r} differently: " + ", ".join(
                    f"{k} wanted {want[k]!r}, stored {have[k]!r}" for k in MANAGED_KEYS if want[k] != have[k]
                )
            )
    if exclusive:
        names = {s.tag for s in specs}
        extra = [filesystem_tag(fs) for fs in actual.virtiofs_filesystems() if filesystem_tag(fs) not in names]
        if extra:
            problems.append("shares not listed are still defined: " + ", ".join(repr(x) for x in extra))
    if memory_backing == "auto" and any(s.state == "present" for s in specs):
        if not actual.memory_status()["shared"]:
            problems.append("the stored definition has no shared memory backing")
    return problems


def element_to_string(elem: t.Any, strip: t.Sequence[str] = ()) -> str:
    """Serialise one element (for attach/detach), optionally without some children."""
    el = copy.deepcopy(elem)
    el.tail = None
    for tag in strip:
        for c in _children(el, tag):
            el.remove(c)
    return etree.tostring(el, encoding="unicode")
