# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share option table: every option of a virtio-fs share, once.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. One row per option of a share (name, Ansible type, choices,
the XML it becomes, the libvirt feature it needs, its documentation). Everything else is
derived from it and checked against it by unit tests:

* the argument spec of ``virtiofs.libvirt.share`` (the single share at the top level, the
  entries of ``shares`` and of ``domains[].shares``): :func:`share_argument_spec`;
* ``ShareSpec`` parsing and ``to_dict`` in ``_domain_xml`` (:data:`SPEC_OPTIONS`), the keys
  compared after a define (:data:`MANAGED_KEYS`);
* the doc fragment ``virtiofs.libvirt.share`` (:func:`documentation`), and the share keys of
  the host role's ``meta/argument_specs.yml``;
* the libvirt version each option needs comes from ``_libvirt_features`` (the feature table),
  never written here.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import get_feature

CACHE_MODES = ("none", "always")
SANDBOX_MODES = ("namespace", "chroot")
STATES = ("present", "absent")
MEMORY_BACKING_MODES = ("auto", "skip")
LIVE_MODES = ("false", "true", "auto")

# kinds of rows
SPEC = "spec"        # part of the <filesystem> element (ShareSpec)
ENTRY = "entry"      # identifies an entry (tag, state)
SOURCE = "source"    # how a missing source directory is created (not part of the XML)


@dataclass(frozen=True)
class ShareOption:
    name: str
    type: str
    description: t.Tuple[str, ...]
    kind: str = SPEC
    choices: t.Tuple[str, ...] = ()
    xml: str = ""
    feature: t.Optional[str] = None
    extra_note: str = ""          # a requirement that is not libvirt's (e.g. the daemon's version)
    default: t.Any = None
    suboptions: t.Optional[t.Dict[str, t.Any]] = None
    entry_description: str = ""   # the one line used inside shares[] entries

    @property
    def libvirt_since(self) -> t.Optional[str]:
        """The libvirt release that accepts this option, when it needs more than virtio-fs itself."""
        if self.feature is None:
            return None
        since = get_feature(self.feature).since
        if since <= get_feature("virtiofs").since:
            return None
        return get_feature(self.feature).since_string

    def version_note(self) -> str:
        parts = []
        if self.libvirt_since:
            parts.append(f"libvirt >= {self.libvirt_since}")
        if self.extra_note:
            parts.append(self.extra_note)
        return ("Needs " + " and ".join(parts) + ".") if parts else ""


_IDRANGE = {
    "start": {"description": "First id in the guest.", "type": "int", "required": True},
    "target": {"description": "First id on the host.", "type": "int", "required": True},
    "count": {"description": "Number of ids.", "type": "int", "required": True},
}

TABLE: t.Tuple[ShareOption, ...] = (
    ShareOption(
        "tag", "str", kind=ENTRY,
        description=(
            "The mount tag (libvirt C(<target dir>)), 1 to 36 bytes of C(A-Z a-z 0-9 . _ : @ + = / -) (the guest "
            "writes it into C(/etc/fstab); the rule is the filter P(virtiofs.libvirt.tag_error#filter)). The guest "
            "mounts it with C(mount -t virtiofs TAG /mnt). It must not start with C(-) (mount and virtiofsd would "
            "read it as an option).",
            "A share with C(state=absent) may have any tag an older definition carries.",
        ),
        xml="<target dir>", entry_description="Mount tag, see O(tag).",
    ),
    ShareOption(
        "state", "str", kind=ENTRY, choices=STATES, default="present",
        description=("V(present) adds or updates the share, V(absent) removes it.",),
        entry_description="See O(state).",
    ),
    ShareOption(
        "source", "path",
        description=(
            "Absolute path of the host directory to share (C(<source dir>)). Required with O(state=present).",
            "It must exist unless O(create_source=true).",
            "Written in normal form: repeated slashes, C(.) components and a trailing slash are dropped, so "
            "V(/srv/x/) and V(/srv/x) are the same share (a definition that already says V(/srv/x/) is left as it "
            "is). A C(..) component is refused, because its meaning depends on symbolic links on the way.",
            "V(/) (or a path that resolves to it) is refused, and so is a symbolic link on the way that a user other "
            "than root can change; a safe symbolic link on the way and a parent directory other users can change "
            "are warnings (see the notes).",
        ),
        xml="<source dir>", entry_description="Host directory, see O(source).",
    ),
    ShareOption(
        "binary_path", "path", feature="binary_path",
        description=(
            "Absolute path of the daemon (or wrapper script) libvirt runs for this share (C(<binary path>)); must "
            "be executable on the host.",
            "When not set libvirt picks a daemon from the vhost-user descriptors in C(/etc/qemu/vhost-user) and "
            "C(/usr/share/qemu/vhost-user); on Debian 12 that is the legacy C daemon of QEMU.",
        ),
        xml="<binary path>",
    ),
    ShareOption(
        "readonly", "bool", feature="readonly", extra_note="virtiofsd >= 1.13.0",
        description=(
            "Export the directory read-only (C(<readonly/>)).",
            "When not set or V(false) the share is read-write.",
        ),
        xml="<readonly/>",
    ),
    ShareOption(
        "cache", "str", feature="cache", choices=CACHE_MODES,
        description=(
            "Daemon cache mode (C(<cache mode>)); libvirt knows only these two values. When not set the daemon "
            "default (C(auto)) applies.",
        ),
        xml="<binary><cache mode>",
    ),
    ShareOption(
        "sandbox", "str", feature="sandbox", choices=SANDBOX_MODES,
        description=("Daemon sandbox mode (C(<sandbox mode>)).",),
        xml="<binary><sandbox mode>",
    ),
    ShareOption(
        "xattr", "bool", feature="xattr",
        description=("Extended attribute support (C(<binary xattr>)).",),
        xml="<binary xattr>",
    ),
    ShareOption(
        "thread_pool_size", "int", feature="thread_pool",
        description=("Size of the daemon's thread pool (C(<thread_pool size>)), V(0) disables the pool.",),
        xml="<binary><thread_pool size>",
    ),
    ShareOption(
        "openfiles", "int", feature="openfiles",
        description=("Maximum number of open files of the daemon (C(<openfiles max>)).",),
        xml="<binary><openfiles max>",
    ),
    ShareOption(
        "queue_size", "int", feature="queue_size",
        description=(
            "Virtqueue size (C(<driver queue>)), for example V(1024): a power of two up to V(1024) (QEMU's "
            "vhost-user-fs device refuses other sizes); other values are refused before anything is changed.",
        ),
        xml="<driver queue>",
    ),
    ShareOption(
        "idmap", "dict", feature="idmap",
        description=("User and group id mapping (C(<idmap>)).",),
        xml="<idmap><uid/><gid/>",
        suboptions={
            "uid": {"description": "User id ranges.", "type": "list", "elements": "dict", "suboptions": _IDRANGE},
            "gid": {"description": "Group id ranges.", "type": "list", "elements": "dict", "suboptions": _IDRANGE},
        },
    ),
    ShareOption(
        "ats", "bool", feature="ats",
        description=("Address translation services of the virtio device (C(<driver ats>)).",),
        xml="<driver ats>",
    ),
    ShareOption(
        "iommu", "bool", feature="iommu",
        description=("Use the platform IOMMU for the virtio device (C(<driver iommu>)).",),
        xml="<driver iommu>",
    ),
    ShareOption(
        "packed", "bool", feature="packed",
        description=("Packed virtqueues (C(<driver packed>)).",),
        xml="<driver packed>",
    ),
    ShareOption(
        "create_source", "bool", kind=SOURCE, default=False,
        description=(
            "Create missing O(source) directories (with parents) instead of failing; O(owner), O(group) and O(mode) "
            "apply to the source directory itself. Entries of O(shares) can set their own C(create_source), "
            "C(owner), C(group) and C(mode).",
            "An unknown O(owner) or O(group) or a malformed O(mode) is an error before anything is created (also in "
            "check mode). Directories are created just before the definition is written; when the run fails before "
            "the definition is written they are removed again (as long as they are still empty). Check mode "
            "reports them in RV(actions).",
        ),
        entry_description="Create this share's missing source directory; defaults to O(create_source).",
    ),
    ShareOption(
        "owner", "str", kind=SOURCE,
        description=("Owner of source directories created by O(create_source=true).",),
        entry_description="Owner of this share's source directory when it is created; defaults to O(owner).",
    ),
    ShareOption(
        "group", "str", kind=SOURCE,
        description=("Group of source directories created by O(create_source=true).",),
        entry_description="Group of this share's source directory when it is created; defaults to O(group).",
    ),
    ShareOption(
        "mode", "raw", kind=SOURCE,
        description=(
            "Mode of source directories created by O(create_source=true), as in M(ansible.builtin.file): a quoted "
            "octal string (V('0755'), V('2775')) or a symbolic mode (V('u=rwx,g=rx,o=')) is recommended; an integer "
            "is taken as the mode's number (YAML V(0755) is 493).",
            "Refused before anything is created: an unquoted three-digit decimal above 0o777 such as V(755) (the "
            "number 755 is octal 1363; quote it), an integer outside 0 to 0o7777, and the setuid bit (0o4000, "
            "meaningless on a directory; setgid and sticky are fine).",
        ),
        entry_description="Mode of this share's source directory when it is created; defaults to O(mode).",
    ),
)

OPTIONS: t.Dict[str, ShareOption] = {o.name: o for o in TABLE}
# options of the <filesystem> element, in table order (ShareSpec's fields; idmap -> uid_map/gid_map)
SPEC_OPTIONS: t.Tuple[str, ...] = tuple(o.name for o in TABLE if o.kind == SPEC)
SOURCE_OPTIONS: t.Tuple[str, ...] = tuple(o.name for o in TABLE if o.kind == SOURCE)
# keys of a share dict the share module manages and compares after a define ("lock" is never
# written, but a <lock> on a managed share is a difference to remove)
MANAGED_KEYS: t.Tuple[str, ...] = SPEC_OPTIONS + ("lock",)
# option -> libvirt feature name (the feature table holds the version)
OPTION_FEATURES: t.Dict[str, str] = {o.name: o.feature for o in TABLE if o.feature is not None}


# --------------------------------------------------------------------------------- argument spec

def _ansible_spec(suboptions: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    out: t.Dict[str, t.Any] = {}
    for name, doc in suboptions.items():
        spec = {k: v for k, v in doc.items() if k in ("type", "elements", "required", "choices", "default")}
        if "suboptions" in doc:
            spec["options"] = _ansible_spec(doc["suboptions"])
        out[name] = spec
    return out


def option_argument_spec(option: ShareOption, entry: bool) -> t.Dict[str, t.Any]:
    spec: t.Dict[str, t.Any] = {"type": option.type}
    if option.choices:
        spec["choices"] = list(option.choices)
    if option.suboptions:
        spec["options"] = _ansible_spec(option.suboptions)
    if entry:
        if option.name == "tag":
            spec["required"] = True
        if option.name == "state":
            spec["default"] = option.default
    elif option.default is not None:
        spec["default"] = option.default
    return spec


def share_argument_spec(entry: bool) -> t.Dict[str, t.Any]:
    """The options of one share: ``entry=True`` for the entries of ``shares`` (``tag`` required,
    per-entry ``create_source``/``owner``/``group``/``mode`` without defaults), ``False`` for
    the single share at the module's top level (without ``tag``/``state``, which the module
    declares itself, and with the ``create_source`` default)."""
    out: t.Dict[str, t.Any] = {}
    for option in TABLE:
        if not entry and option.kind == ENTRY:
            continue
        spec = option_argument_spec(option, entry)
        if entry and option.kind == SOURCE:
            spec.pop("default", None)
        out[option.name] = spec
    return out


# --------------------------------------------------------------------------------- documentation

def _doc_suboptions(suboptions: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    return {name: dict(doc) if "suboptions" not in doc else dict(doc, suboptions=_doc_suboptions(doc["suboptions"]))
            for name, doc in suboptions.items()}


def documentation() -> t.Dict[str, t.Any]:
    """The ``options`` of the doc fragment ``virtiofs.libvirt.share``: the single share's options
    at the module's top level (everything but ``tag`` and ``state``), with version notes."""
    options: t.Dict[str, t.Any] = {}
    for option in TABLE:
        if option.kind == ENTRY:
            continue
        description = list(option.description)
        note = option.version_note()
        if note:
            description[0] = description[0] + " " + note
        doc: t.Dict[str, t.Any] = {"description": description, "type": option.type}
        if option.choices:
            doc["choices"] = list(option.choices)
        if option.default is not None:
            doc["default"] = option.default
        if option.suboptions:
            doc["suboptions"] = _doc_suboptions(option.suboptions)
        options[option.name] = doc
    return options


def entry_documentation() -> t.Dict[str, t.Any]:
    """The ``suboptions`` of an entry of ``shares`` (each refers to the top-level option)."""
    out: t.Dict[str, t.Any] = {}
    for option in TABLE:
        doc: t.Dict[str, t.Any] = {"description": option.entry_description or f"See O({option.name}).",
                                   "type": option.type}
        if option.name == "tag":
            doc["required"] = True
        if option.choices:
            doc["choices"] = list(option.choices)
        if option.name == "state":
            doc["default"] = option.default
        if option.suboptions:
            doc["suboptions"] = _doc_suboptions(option.suboptions)
        out[option.name] = doc
    return out


def role_share_keys() -> t.Dict[str, str]:
    """Share keys the host role passes through to the module, with their Ansible types."""
    return {o.name: o.type for o in TABLE if o.kind in (SPEC, ENTRY) or o.name == "create_source"}
