# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd (Rust) option/version table: the one place that knows virtiofsd's options.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. Sources: ``docs/reference.md`` section A (upstream
``src/main.rs`` at each version bump, checked against a real 1.13.2 ``--help``).

Vocabulary:

* *key* -- the option name used by the collection (``inode_file_handles``); virtiofsd's long
  option with ``_`` for ``-``.
* *values* -- a ``{key: value}`` dict with Python values (bool, int, str, list of str);
  ``None`` and ``[]`` mean "not set".
* *version* -- a 3-tuple of ints (see ``_version.py``).

Public API: :data:`OPTIONS`, :data:`LIBVIRT_OWNED`, :class:`OptionsError`,
:func:`parse_extra_args`, :func:`merge_values`, :func:`validate_values`,
:func:`render_values`, :func:`argument_spec`.
"""

from __future__ import annotations

import difflib
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import (
    format_version,
    parse_version,
)

Version = t.Tuple[int, int, int]

KIND_BOOL = "bool"
KIND_INT = "int"
KIND_STR = "str"
KIND_LIST = "list"
KIND_CHOICE = "choice"


class OptionsError(ValueError):
    """One or more invalid virtiofsd options. ``problems`` lists each one."""

    def __init__(self, problems: t.Union[str, t.Sequence[str]]):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _v(text: str) -> Version:
    return parse_version(text)


@dataclass(frozen=True)
class BoolForm:
    """What a bool value renders to: ``flag`` (``None`` = nothing) and the version adding it."""

    flag: t.Optional[str]
    added: Version
    note: str = ""


# Linux capability names as libcap-ng's capng_name_to_capability() knows them (virtiofsd's
# --modcaps uses it); linux/capability.h up to CAP_CHECKPOINT_RESTORE (Linux 5.9).
CAPABILITIES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
)


@dataclass(frozen=True)
class OptionSpec:
    key: str
    flag: str
    kind: str
    added: Version
    description: str
    # KIND_CHOICE: (value, first version) in documentation order
    choices: t.Tuple[t.Tuple[str, Version], ...] = ()
    # KIND_CHOICE: value -> warning text (deprecated aliases)
    deprecated_choices: t.Tuple[t.Tuple[str, str], ...] = ()
    # KIND_BOOL: rendering of true and false
    true_form: t.Optional[BoolForm] = None
    false_form: t.Optional[BoolForm] = None
    # KIND_LIST: version from which the flag may be given more than once (None: always)
    repeatable_since: t.Optional[Version] = None
    # KIND_INT: smallest accepted value
    minimum: int = 0
    # KIND_STR / KIND_LIST: full-match regular expression and what it means
    pattern: t.Optional[str] = None
    pattern_help: str = ""
    # clap declares it with ``require_equals`` (we always render ``--flag=value`` anyway)
    require_equals: bool = False
    # libvirt also sets this option from the domain XML through ``-o`` (older libvirt);
    # the text names the XML element.
    libvirt_xml: t.Optional[str] = None
    # the option of a share (``_share_options.TABLE``) from which libvirt passes this flag to the
    # daemon (docs/reference.md, libvirt's virtiofsd command line); a wrapper's own value comes after
    # libvirt's arguments and wins, so the two would disagree
    share_option: t.Optional[str] = None

    @property
    def takes_value(self) -> bool:
        return self.kind != KIND_BOOL

    def choice_added(self, value: str) -> t.Optional[Version]:
        for name, added in self.choices:
            if name == value:
                return added
        return None

    @property
    def choice_names(self) -> t.List[str]:
        return [name for name, _added in self.choices]

    def flags(self) -> t.List[str]:
        """Every long flag this entry stands for (used to map raw arguments back)."""
        if self.kind != KIND_BOOL:
            return [self.flag]
        result = []
        for form in (self.true_form, self.false_form):
            if form is not None and form.flag and form.flag not in result:
                result.append(form.flag)
        return result


_V100 = _v("1.0.0")

_OPTION_LIST: t.List[OptionSpec] = [
    OptionSpec(
        "allow_direct_io", "--allow-direct-io", KIND_BOOL, _V100,
        "Honour the O_DIRECT flag of guest applications.",
        true_form=BoolForm("--allow-direct-io", _V100),
        false_form=BoolForm(None, _V100, "off is the default"),
    ),
    OptionSpec(
        "allow_mmap", "--allow-mmap", KIND_BOOL, _v("1.11.0"),
        "Allow shared mmap of files with cache metadata or never.",
        true_form=BoolForm("--allow-mmap", _v("1.11.0")),
        false_form=BoolForm(None, _v("1.11.0"), "off is the default"),
    ),
    OptionSpec(
        "announce_submounts", "--announce-submounts", KIND_BOOL, _V100,
        "Tell the guest which directories are mount points (default on since 1.6.0).",
        true_form=BoolForm("--announce-submounts", _V100, "no-op since 1.6.0 where it is the default"),
        false_form=BoolForm(
            "--no-announce-submounts", _v("1.6.0"),
            "before 1.6.0 submounts were not announced unless asked for; omit the option there",
        ),
    ),
    OptionSpec(
        "cache", "--cache", KIND_CHOICE, _V100,
        "Caching policy.",
        choices=(("auto", _V100), ("always", _V100), ("never", _V100), ("metadata", _v("1.8.0"))),
        libvirt_xml="<binary><cache mode=.../></binary>", share_option="cache",
    ),
    OptionSpec(
        "inode_file_handles", "--inode-file-handles", KIND_CHOICE, _V100,
        "Use file handles instead of O_PATH file descriptors to reference inodes.",
        choices=(("never", _V100), ("fallback", _V100), ("mandatory", _v("1.1.0")), ("prefer", _v("1.2.0"))),
        deprecated_choices=(("fallback", "inode_file_handles=fallback is a deprecated alias of prefer (virtiofsd >= 1.2.0 warns at start); use prefer"),),
        require_equals=True,
    ),
    OptionSpec(
        "killpriv_v2", "--killpriv-v2", KIND_BOOL, _v("1.1.0"),
        "FUSE_HANDLE_KILLPRIV_V2 support (off by default since 1.3.0, on by default in 1.1.x-1.2.x).",
        true_form=BoolForm(
            "--killpriv-v2", _v("1.3.0"),
            "in 1.1.x-1.2.x killpriv_v2 is on by default; omit the option there",
        ),
        false_form=BoolForm("--no-killpriv-v2", _v("1.1.0"), "no-op since 1.3.0 where it is the default"),
    ),
    OptionSpec(
        "log_level", "--log-level", KIND_CHOICE, _V100,
        "Log level (the RUST_LOG environment variable overrides it).",
        choices=(
            ("error", _V100), ("warn", _V100), ("info", _V100), ("debug", _V100), ("trace", _V100),
            ("off", _v("1.1.0")),
        ),
    ),
    OptionSpec(
        "migration_confirm_paths", "--migration-confirm-paths", KIND_BOOL, _v("1.11.0"),
        "find-paths migration: double-check inode paths at switch-over.",
        true_form=BoolForm("--migration-confirm-paths", _v("1.11.0")),
        false_form=BoolForm(None, _v("1.11.0"), "off is the default"),
    ),
    OptionSpec(
        "migration_mode", "--migration-mode", KIND_CHOICE, _v("1.11.0"),
        "How to migrate the daemon state.",
        choices=(("find-paths", _v("1.11.0")), ("file-handles", _v("1.12.0"))),
    ),
    OptionSpec(
        "migration_on_error", "--migration-on-error", KIND_CHOICE, _v("1.11.0"),
        "What the migration destination does when an inode cannot be migrated.",
        choices=(("abort", _v("1.11.0")), ("guest-error", _v("1.11.0"))),
    ),
    OptionSpec(
        "migration_verify_handles", "--migration-verify-handles", KIND_BOOL, _v("1.11.0"),
        "find-paths migration: verify that the destination opened the same inodes.",
        true_form=BoolForm("--migration-verify-handles", _v("1.11.0")),
        false_form=BoolForm(None, _v("1.11.0"), "off is the default"),
    ),
    OptionSpec(
        "modcaps", "--modcaps", KIND_STR, _v("1.2.0"),
        "Modify the daemon's capability set, e.g. +sys_admin:-chown.",
        pattern=r"(?ai)[+-](?:{caps})(?::[+-](?:{caps}))*".format(caps="|".join(CAPABILITIES)),
        pattern_help="a ':'-separated list of +capability / -capability with Linux capability names as libcap-ng "
        "knows them (without cap_), e.g. +sys_admin:-chown",
    ),
    OptionSpec(
        "posix_acl", "--posix-acl", KIND_BOOL, _v("1.2.0"),
        "POSIX ACL support (implies xattr).",
        true_form=BoolForm("--posix-acl", _v("1.2.0")),
        false_form=BoolForm(None, _v("1.2.0"), "off is the default"),
    ),
    OptionSpec(
        "preserve_noatime", "--preserve-noatime", KIND_BOOL, _v("1.7.0"),
        "Keep the O_NOATIME open flag.",
        true_form=BoolForm("--preserve-noatime", _v("1.7.0")),
        false_form=BoolForm(None, _v("1.7.0"), "off is the default"),
    ),
    OptionSpec(
        "readdirplus", "--no-readdirplus", KIND_BOOL, _V100,
        "READDIRPLUS support (on by default, always off with cache never).",
        true_form=BoolForm(None, _V100, "on is the default"),
        false_form=BoolForm("--no-readdirplus", _V100),
    ),
    OptionSpec(
        "readonly", "--readonly", KIND_BOOL, _v("1.13.0"),
        "Refuse every guest modification of the share.",
        true_form=BoolForm("--readonly", _v("1.13.0")),
        false_form=BoolForm(None, _v("1.13.0"), "off is the default"),
        share_option="readonly",
    ),
    OptionSpec(
        "rlimit_nofile", "--rlimit-nofile", KIND_INT, _V100,
        "Maximum number of open files (0 leaves the limit unchanged).",
        minimum=0, share_option="openfiles",
    ),
    OptionSpec(
        "sandbox", "--sandbox", KIND_CHOICE, _V100,
        "Sandbox mechanism.",
        choices=(("namespace", _V100), ("chroot", _V100), ("none", _V100)),
        libvirt_xml="<binary><sandbox mode=.../></binary>", share_option="sandbox",
    ),
    OptionSpec(
        "seccomp", "--seccomp", KIND_CHOICE, _V100,
        "Action on a syscall outside the seccomp allow list.",
        choices=(("none", _V100), ("kill", _V100), ("log", _v("1.1.0")), ("trap", _V100)),
    ),
    OptionSpec(
        "security_label", "--security-label", KIND_BOOL, _v("1.4.0"),
        "Store the guest's security label on new files (implies xattr).",
        true_form=BoolForm("--security-label", _v("1.4.0")),
        false_form=BoolForm(None, _v("1.4.0"), "off is the default"),
    ),
    OptionSpec(
        "syslog", "--syslog", KIND_BOOL, _v("1.1.0"),
        "Log to syslog instead of stderr.",
        true_form=BoolForm("--syslog", _v("1.1.0")),
        false_form=BoolForm(None, _v("1.1.0"), "stderr is the default"),
    ),
    OptionSpec(
        "thread_pool_size", "--thread-pool-size", KIND_INT, _V100,
        "Thread pool size (0 disables the pool).",
        minimum=0, share_option="thread_pool_size",
    ),
    OptionSpec(
        "translate_gid", "--translate-gid", KIND_LIST, _v("1.13.0"),
        "In-daemon GID translation rules.",
        pattern=r"(?:guest|host|squash-guest|squash-host|map):\d+:\d+:\d+|forbid-guest:\d+:\d+",
        pattern_help="TYPE:SOURCE:TARGET:COUNT with TYPE one of guest, host, squash-guest, squash-host, map, "
        "or forbid-guest:SOURCE:COUNT",
    ),
    OptionSpec(
        "translate_uid", "--translate-uid", KIND_LIST, _v("1.13.0"),
        "In-daemon UID translation rules.",
        pattern=r"(?:guest|host|squash-guest|squash-host|map):\d+:\d+:\d+|forbid-guest:\d+:\d+",
        pattern_help="TYPE:SOURCE:TARGET:COUNT with TYPE one of guest, host, squash-guest, squash-host, map, "
        "or forbid-guest:SOURCE:COUNT",
    ),
    OptionSpec(
        "gid_map", "--gid-map", KIND_LIST, _v("1.6.0"),
        "User-namespace GID mapping (needs sandbox namespace).",
        repeatable_since=_v("1.11.0"),
        pattern=r":\d+:\d+:\d+:",
        pattern_help=":NAMESPACE_GID:HOST_GID:COUNT: (starting and ending with ':')", share_option="idmap",
    ),
    OptionSpec(
        "uid_map", "--uid-map", KIND_LIST, _v("1.6.0"),
        "User-namespace UID mapping (needs sandbox namespace).",
        repeatable_since=_v("1.11.0"),
        pattern=r":\d+:\d+:\d+:",
        pattern_help=":NAMESPACE_UID:HOST_UID:COUNT: (starting and ending with ':')", share_option="idmap",
    ),
    OptionSpec(
        "writeback", "--writeback", KIND_BOOL, _V100,
        "Writeback caching.",
        true_form=BoolForm("--writeback", _V100),
        false_form=BoolForm(None, _V100, "off is the default"),
    ),
    OptionSpec(
        "xattr", "--xattr", KIND_BOOL, _V100,
        "Extended attribute support.",
        true_form=BoolForm("--xattr", _V100),
        false_form=BoolForm(None, _V100, "off is the default"),
        libvirt_xml="<binary xattr='on|off'>", share_option="xattr",
    ),
    OptionSpec(
        "xattrmap", "--xattrmap", KIND_STR, _V100,
        "Extended attribute name mapping rules (implies xattr).",
        pattern=r"[^\x00\n]+",
        pattern_help="a non-empty rule string without NUL or newline, e.g. :map::user.virtiofs.:",
    ),
]

#: key -> OptionSpec, in rendering order (alphabetical by key, which keeps argv stable)
OPTIONS: t.Dict[str, OptionSpec] = {spec.key: spec for spec in sorted(_OPTION_LIST, key=lambda s: s.key)}

#: flag -> key, for every flag the table knows (``--no-readdirplus`` -> ``readdirplus``)
FLAG_TO_KEY: t.Dict[str, str] = {flag: spec.key for spec in OPTIONS.values() for flag in spec.flags()}

#: Options libvirt passes itself, or that make no sense in a wrapper: refused with the reason.
LIBVIRT_OWNED: t.Dict[str, str] = {
    "--fd": "libvirt passes the listening socket with --fd",
    "--socket-path": "libvirt passes the socket with --fd (--socket-path conflicts with it)",
    "--socket": "libvirt passes the socket with --fd (--socket is the deprecated --socket-path)",
    "--socket-group": "libvirt passes the socket with --fd (--socket-group conflicts with --fd and --print-capabilities)",
    "--shared-dir": "libvirt passes the shared directory from <source dir=...> (--shared-dir or -o source=)",
    "--tag": "libvirt/QEMU set the tag from <target dir=...>; --tag crashes QEMU 7.1-8.0",
    "-o": "-o is libvirt's compat option list; it overrides every separate option, use the typed options instead",
    "--print-capabilities": "libvirt probes --print-capabilities itself; the wrapper passes it through",
    "--help": "not a daemon option",
    "-h": "not a daemon option",
    "--version": "not a daemon option (the wrapper passes --version through)",
    "-V": "not a daemon option (the wrapper passes --version through)",
    "-d": "deprecated alias; use log_level: debug",
    "-f": "deprecated no-op flag of the C daemon; remove it",
}

_NOT_OPTIONS_HINT: t.Dict[str, str] = {
    "--uid": "virtiofsd has no --uid option; use uid_map (user namespace) or translate_uid (in-daemon)",
    "--gid": "virtiofsd has no --gid option; use gid_map (user namespace) or translate_gid (in-daemon)",
    "--daemonize": "--daemonize is a C virtiofsd option; the Rust daemon always runs in the foreground under libvirt",
}

#: conflicts: (key, predicate on its value, other key, predicate, explanation)
_Pred = t.Callable[[t.Any], bool]


def _truthy(value: t.Any) -> bool:
    return bool(value)


def _is(*wanted: t.Any) -> _Pred:
    return lambda value: value in wanted


def _modcaps_drops_dac_read_search(value: t.Any) -> bool:
    return any(item.lower() == "-dac_read_search" for item in str(value).split(":"))


_CONFLICTS: t.List[t.Tuple[str, _Pred, str, _Pred, str]] = [
    ("posix_acl", _is(True), "translate_uid", _truthy,
     "virtiofsd refuses --posix-acl with --translate-uid (translating IDs would break POSIX ACLs)"),
    ("posix_acl", _is(True), "translate_gid", _truthy,
     "virtiofsd refuses --posix-acl with --translate-gid (translating IDs would break POSIX ACLs)"),
    ("uid_map", _truthy, "sandbox", _is("chroot", "none"),
     "--uid-map needs the user namespace of --sandbox namespace"),
    ("gid_map", _truthy, "sandbox", _is("chroot", "none"),
     "--gid-map needs the user namespace of --sandbox namespace"),
    ("migration_mode", _is("file-handles"), "migration_verify_handles", _is(True),
     "virtiofsd exits with 'Cannot use --migration-verify-handles with --migration-mode=file-handles'"),
    ("migration_mode", _is("file-handles"), "migration_confirm_paths", _is(True),
     "virtiofsd exits with 'Cannot use --migration-confirm-paths with --migration-mode=file-handles'"),
    ("inode_file_handles", _is("prefer", "mandatory", "fallback"), "modcaps", _modcaps_drops_dac_read_search,
     "file handles need CAP_DAC_READ_SEARCH, virtiofsd exits when modcaps drops it"),
]


def vstr(version: t.Sequence[int]) -> str:
    return format_version(version)


def _label(origins: t.Mapping[str, str], key: str) -> str:
    return origins.get(key) or f"options.{key}"


def _suggest(flag: str) -> str:
    known = sorted(set(FLAG_TO_KEY) | set(LIBVIRT_OWNED))
    close = difflib.get_close_matches(flag, known, n=2, cutoff=0.75)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


# ---------------------------------------------------------------------------------------------
# extra_args -> values
# ---------------------------------------------------------------------------------------------

def parse_extra_args(args: t.Optional[t.Sequence[t.Any]]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str]]:
    """Map raw virtiofsd arguments back to table entries.

    Accepts ``--flag``, ``--flag=value`` and ``--flag value`` (``--inode-file-handles`` needs
    ``=``, as in virtiofsd). Returns ``(values, origins)`` where ``origins[key]`` names the
    argument(s) for error messages. Raises :class:`OptionsError` for unknown, libvirt-owned,
    malformed or repeated (non-list) options; values are type-converted but not yet validated
    against a version (see :func:`validate_values`).
    """
    values, origins, problems = _parse_extra_args(args)
    if problems:
        raise OptionsError(problems)
    return values, origins


def _parse_extra_args(
    args: t.Optional[t.Sequence[t.Any]],
) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str], t.List[str]]:
    """:func:`parse_extra_args` without raising: the values of the items that parsed, their
    origins, and the problems of the others (item by item, so one malformed item does not hide
    the values of the rest)."""
    values: t.Dict[str, t.Any] = {}
    origins: t.Dict[str, str] = {}
    problems: t.List[str] = []
    items = [str(a) for a in (args or [])]
    i = 0
    while i < len(items):
        raw = items[i]
        i += 1
        if raw == "":
            problems.append("extra_args contains an empty string; remove it")
            continue
        name, sep, inline = raw.partition("=") if raw.startswith("--") else (raw, "", "")
        short = name if not name.startswith("--") else None
        if short is not None:
            base = short[:2]
            if base in LIBVIRT_OWNED:
                problems.append(f"extra_args {raw!r}: {base} is refused: {LIBVIRT_OWNED[base]}")
            elif short.startswith("-"):
                problems.append(f"extra_args {raw!r}: unknown virtiofsd option {short}{_suggest(short)}")
            else:
                problems.append(
                    f"extra_args {raw!r}: not an option (values go into the same item as --flag=value)"
                )
            continue
        if name in LIBVIRT_OWNED:
            problems.append(f"extra_args {raw!r}: {name} is refused: {LIBVIRT_OWNED[name]}")
            continue
        if name in _NOT_OPTIONS_HINT:
            problems.append(f"extra_args {raw!r}: {_NOT_OPTIONS_HINT[name]}")
            continue
        key = FLAG_TO_KEY.get(name)
        if key is None:
            problems.append(f"extra_args {raw!r}: unknown virtiofsd option {name}{_suggest(name)}")
            continue
        spec = OPTIONS[key]
        label = f"extra_args {raw!r}"
        if spec.kind == KIND_BOOL:
            if sep:
                problems.append(f"{label}: {name} takes no value; write it as {name}")
                continue
            value: t.Any = bool(spec.true_form and spec.true_form.flag == name)
        else:
            if sep:
                text = inline
            elif spec.require_equals:
                problems.append(f"{label}: {name} needs '=' ({name}=VALUE); virtiofsd rejects a separate value (rc 2)")
                continue
            elif i < len(items):
                text = items[i]
                i += 1
                label = f"extra_args {raw!r} {text!r}"
            else:
                problems.append(f"{label}: {name} needs a value")
                continue
            try:
                value = _convert(spec, text)
            except OptionsError as exc:
                problems.extend(f"{label}: {p}" for p in exc.problems)
                continue
        if spec.kind == KIND_LIST:
            values.setdefault(key, []).extend(value)
            origins[key] = f"{origins[key]}, {label}" if key in origins else label
            continue
        if key in values:
            problems.append(f"{label}: {key} is already set by {origins[key]}; give each option once")
            continue
        values[key] = value
        origins[key] = label
    return values, origins, problems


def _convert(spec: OptionSpec, value: t.Any) -> t.Any:
    """Convert one value to the Python type of ``spec`` (strings come from extra_args)."""
    if spec.kind == KIND_BOOL:
        if isinstance(value, bool):
            return value
        raise OptionsError(f"{spec.key} must be true or false, got {value!r}")
    if spec.kind == KIND_INT:
        if isinstance(value, bool):
            raise OptionsError(f"{spec.key} must be an integer, got {value!r}")
        try:
            return int(str(value).strip(), 10)
        except ValueError:
            raise OptionsError(f"{spec.key} must be an integer, got {value!r}") from None
    if spec.kind == KIND_LIST:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]
    return str(value)


def merge_values(
    options: t.Optional[t.Mapping[str, t.Any]],
    extra: t.Mapping[str, t.Any],
    extra_origins: t.Mapping[str, str],
) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str]]:
    """Combine ``options`` (typed) and parsed ``extra_args``; the same key in both is an error."""
    values, origins, problems = _merge(options, extra, extra_origins)
    if problems:
        raise OptionsError(problems)
    return values, origins


def _merge(
    options: t.Optional[t.Mapping[str, t.Any]],
    extra: t.Mapping[str, t.Any],
    extra_origins: t.Mapping[str, str],
) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str], t.List[str]]:
    """:func:`merge_values` without raising: the values that converted, their origins, the problems."""
    values: t.Dict[str, t.Any] = {}
    origins: t.Dict[str, str] = {}
    problems: t.List[str] = []
    for key, value in (options or {}).items():
        if key not in OPTIONS:
            close = difflib.get_close_matches(str(key), list(OPTIONS), n=1, cutoff=0.75)
            problems.append(f"options.{key}: unknown option; known: {', '.join(OPTIONS)}"
                            + (f"; did you mean {close[0]}?" if close else ""))
            continue
        if _unset(value):
            continue
        try:
            values[key] = _convert(OPTIONS[key], value)
        except OptionsError as exc:
            problems.extend(f"options.{p}" for p in exc.problems)
            continue
        origins[key] = f"options.{key}"
    for key, value in extra.items():
        if key in values:
            problems.append(f"{extra_origins.get(key, 'extra_args')} sets {key}, which options.{key} already sets; keep one")
            continue
        values[key] = value
        origins[key] = extra_origins.get(key, f"extra_args {key}")
    return values, origins, problems


def _unset(value: t.Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 0)


# ---------------------------------------------------------------------------------------------
# validation and rendering
# ---------------------------------------------------------------------------------------------

def _form(spec: OptionSpec, value: bool) -> BoolForm:
    form = spec.true_form if value else spec.false_form
    if form is None:  # pragma: no cover - every bool entry of the table defines both forms
        raise OptionsError(f"{spec.key}: the option table has no rendering for {value!r}")
    return form


def _value_problems(spec: OptionSpec, key: str, value: t.Any, label: str) -> t.List[str]:
    """The problems of one converted value that hold for every virtiofsd version: a choice the
    table does not know, an integer out of range, text or list entries not matching the pattern."""
    problems: t.List[str] = []
    if spec.kind == KIND_CHOICE:
        if spec.choice_added(value) is None:
            problems.append(f"{label}: {value!r} is not a valid {key}; choose one of {', '.join(spec.choice_names)}")
    elif spec.kind == KIND_INT:
        if value < spec.minimum:
            problems.append(f"{label}: {key} must be >= {spec.minimum}, got {value}")
        elif value > 2 ** 64 - 1:
            problems.append(f"{label}: {key} is too large, got {value}")
    elif spec.kind == KIND_STR:
        if spec.pattern and not re.fullmatch(spec.pattern, value):
            problems.append(f"{label}: {value!r} is not a valid {key}; expected {spec.pattern_help}")
    elif spec.kind == KIND_LIST:
        for item in value:
            if spec.pattern and not re.fullmatch(spec.pattern, item):
                problems.append(f"{label}: {item!r} is not a valid {key} entry; expected {spec.pattern_help}")
    return problems


def _conflicts(values: t.Mapping[str, t.Any], origins: t.Mapping[str, str]) -> t.List[str]:
    """The pairs of values virtiofsd refuses together (every version)."""
    problems: t.List[str] = []
    for key_a, pred_a, key_b, pred_b, why in _CONFLICTS:
        if key_a in values and key_b in values and not _unset(values[key_a]) and not _unset(values[key_b]):
            if pred_a(values[key_a]) and pred_b(values[key_b]):
                problems.append(
                    f"{_label(origins, key_a)} conflicts with {_label(origins, key_b)}={_show(values[key_b])}: {why}; "
                    "remove one of them"
                )
    return problems


def check_without_daemon(options: t.Any, extra_args: t.Optional[t.Sequence[t.Any]] = None) -> t.List[str]:
    """Every problem of a wrapper's ``options`` and ``extra_args`` that the table finds without the
    daemon: unknown option names (with a close match), values of the wrong type, unknown choices,
    integers out of range, text not matching its pattern, refused or malformed extra_args and
    conflicting pairs. What depends on the installed virtiofsd (the version that added an option or
    a choice, the daemon's ``--help``) is left to :func:`validate_values`. Returns the problems."""
    values, origins, problems = profile_values(options, extra_args)
    for key, value in values.items():
        problems.extend(_value_problems(OPTIONS[key], key, value, _label(origins, key)))
    return problems + _conflicts(values, origins)


def profile_values(
    options: t.Any, extra_args: t.Optional[t.Sequence[t.Any]] = None,
) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str], t.List[str]]:
    """A wrapper's ``options`` and ``extra_args`` as table values without raising: the values that
    converted (keys of :data:`OPTIONS`), their origins (``options.KEY`` or the extra_args item) and
    the problems of the rest (each extra_args item on its own)."""
    extra, extra_origins, problems = _parse_extra_args(extra_args)
    values, origins, merge_problems = _merge(options, extra, extra_origins)
    return values, origins, problems + merge_problems


def validate_values(
    values: t.Mapping[str, t.Any],
    version: t.Sequence[int],
    supported_options: t.Optional[t.Collection[str]] = None,
    origins: t.Optional[t.Mapping[str, str]] = None,
) -> t.List[str]:
    """Check ``values`` against the table for virtiofsd ``version``.

    ``supported_options`` is the daemon's own ``--help`` option set (see
    ``_virtiofsd.parse_help_options``); every flag that would be rendered must be in it.
    Returns warnings; raises :class:`OptionsError` listing every problem.
    """
    origins = origins or {}
    version = tuple(version)
    have = vstr(version)
    problems: t.List[str] = []
    warnings: t.List[str] = []
    for key, value in values.items():
        if _unset(value):
            continue
        spec = OPTIONS.get(key)
        label = _label(origins, key)
        if spec is None:
            problems.append(f"{label}: unknown option")
            continue
        try:
            value = _convert(spec, value)
        except OptionsError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
            continue
        if spec.kind == KIND_BOOL:
            # gate on the flag the value renders to; a value that renders nothing (the daemon's
            # default) is valid on every version
            form = _form(spec, value)
            if form.flag and version < form.added:
                problems.append(
                    f"{label}: {key}={str(value).lower()} renders {form.flag}, which was added in virtiofsd "
                    f"{vstr(form.added)}, the installed virtiofsd is {have}; "
                    + (form.note if form.note and "omit" in form.note else f"upgrade virtiofsd or remove {key}")
                )
                continue
        elif version < spec.added:
            problems.append(
                f"{label}: {spec.flag} was added in virtiofsd {vstr(spec.added)}, the installed virtiofsd is {have}; "
                f"upgrade virtiofsd or remove {key}"
            )
            continue
        static = _value_problems(spec, key, value, label)
        problems.extend(static)
        if spec.kind == KIND_CHOICE and not static:
            added = t.cast(Version, spec.choice_added(value))
            if version < added:
                problems.append(
                    f"{label}: {key}={value} ({spec.flag}={value}) was added in virtiofsd {vstr(added)}, "
                    f"the installed virtiofsd is {have}; upgrade virtiofsd or choose another value"
                )
            for name, text in spec.deprecated_choices:
                if name == value:
                    warnings.append(f"{label}: {text}")
        elif spec.kind == KIND_LIST:
            if spec.repeatable_since is not None and len(value) > 1 and version < spec.repeatable_since:
                problems.append(
                    f"{label}: {key} has {len(value)} entries, but {spec.flag} may only be given once before "
                    f"virtiofsd {vstr(spec.repeatable_since)}, the installed virtiofsd is {have}; "
                    "use one entry or upgrade virtiofsd"
                )
        if spec.libvirt_xml:
            warnings.append(
                f"{label}: libvirt also sets {key} from the domain XML {spec.libvirt_xml} (older libvirt passes it "
                f"as -o, which overrides the wrapper's {spec.flag}); prefer the matching option of the "
                "virtiofs.libvirt.share module"
            )
    problems.extend(_conflicts(values, origins))
    if values.get("readdirplus") is True and values.get("cache") == "never":
        warnings.append("readdirplus=true has no effect with cache=never (virtiofsd turns readdirplus off)")
    if values.get("allow_mmap") is True and values.get("cache") not in (None, "never", "metadata"):
        warnings.append("allow_mmap only matters with cache=never or cache=metadata")
    if supported_options is not None and not problems:
        supported = set(supported_options)
        for arg in render_values(values, version):
            flag = arg.split("=", 1)[0]
            if flag not in supported:
                key = FLAG_TO_KEY.get(flag, flag)
                problems.append(
                    f"{_label(origins, key)}: the daemon's --help does not list {flag} (installed virtiofsd {have}); "
                    "this build lacks the option, remove it"
                )
    if problems:
        raise OptionsError(problems)
    return warnings


def _show(value: t.Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def render_values(values: t.Mapping[str, t.Any], version: t.Optional[t.Sequence[int]] = None) -> t.List[str]:
    """Render ``values`` to virtiofsd arguments, in table order.

    Value options render as one argument ``--flag=value`` (required for
    ``--inode-file-handles``, unambiguous for the rest); list options render one argument per
    entry; bools render their true/false flag or nothing. ``version`` is accepted for future
    version-dependent spellings; call :func:`validate_values` first.
    """
    argv: t.List[str] = []
    for key, spec in OPTIONS.items():
        value = values.get(key)
        if _unset(value):
            continue
        value = _convert(spec, value)
        if spec.kind == KIND_BOOL:
            flag = _form(spec, value).flag
            if flag:
                argv.append(flag)
        elif spec.kind == KIND_LIST:
            argv.extend(f"{spec.flag}={item}" for item in value)
        else:
            argv.append(f"{spec.flag}={value}")
    return argv


# ---------------------------------------------------------------------------------------------
# Ansible argument spec (kept next to the table so both stay in step)
# ---------------------------------------------------------------------------------------------

def argument_spec() -> t.Dict[str, t.Dict[str, t.Any]]:
    """Suboption spec for a module's ``options`` dict: one typed key per table entry."""
    spec: t.Dict[str, t.Dict[str, t.Any]] = {}
    for key, entry in OPTIONS.items():
        if entry.kind == KIND_BOOL:
            spec[key] = {"type": "bool"}
        elif entry.kind == KIND_INT:
            spec[key] = {"type": "int"}
        elif entry.kind == KIND_STR:
            spec[key] = {"type": "str"}
        elif entry.kind == KIND_LIST:
            spec[key] = {"type": "list", "elements": "str"}
        else:
            spec[key] = {"type": "str", "choices": entry.choice_names}
    return spec
