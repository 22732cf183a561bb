# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation and rendering of the POSIX sh wrapper that libvirt runs as ``<binary path=...>``.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. The wrapper (rules and their sources: docs/reference.md A.5):

* answers the bare probe ``WRAPPER --print-capabilities`` by exec'ing the daemon with exactly
  that argument (stdout stays pure JSON);
* otherwise runs ``exec /abs/daemon "$@" <options>``: libvirt's arguments first, the
  configured options after them, so they win over libvirt's duplicates (virtiofsd >= 1.7.1
  keeps the last occurrence);
* never prints anything itself; every value is quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
import signal
import stat
import subprocess
import typing as t
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import (
    AttributesError,
    BackupError,
    WriteError,
    describe_attrs,
    install_temporary,
    read_bytes,
    remove_file,
    remove_leftovers,
    set_attributes,
    write_temporary,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import LockTimeout, path_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import (
    UntrustedPathError,
    directory_problem,
    file_problem,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import check as check_root_only
from ansible_collections.virtiofs.libvirt.plugins.module_utils._restart import (
    forget_attribute_repair,
    record_attribute_repair,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import check_daemon as check_rust_daemon
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    DaemonInfo,
    RunCallable,
    VirtiofsdError,
    parse_capabilities,
    parse_version_output,
    probe_daemon,
    short_output,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import (
    OptionsError,
    merge_values,
    parse_extra_args,
    render_values,
    validate_values,
)

MODULE_NAME = "virtiofs.libvirt.virtiofsd_wrapper"
MARKER = f"managed by Ansible ({MODULE_NAME})"
#: the second line of every wrapper the module writes
HEADER_LINE = f"# virtiofsd wrapper -- {MARKER}."
WRAPPER_MODE = 0o755
#: the module's ``state`` choices: V(present) writes the wrapper, V(absent) removes it
STATES = ("present", "absent")
#: first virtiofsd release where a repeated flag is accepted (clap ``args_override_self``)
_OVERRIDE_SELF_SINCE = (1, 7, 1)


class WrapperError(Exception):
    """A wrapper that must not be written (bad paths, wrong daemon, bad options, failed test)."""


@dataclass
class WrapperPlan:
    path: str
    binary: str
    argv: t.List[str]
    script: str
    daemon: DaemonInfo
    warnings: t.List[str] = field(default_factory=list)

    @property
    def daemon_version(self) -> t.Optional[str]:
        return self.daemon.version_string


def is_managed_wrapper(content: t.Union[str, bytes, None]) -> bool:
    """True when ``content`` (the start of a file) is a wrapper written by this module."""
    if content is None:
        return False
    if isinstance(content, bytes):
        content = content[:4096].decode("utf-8", "replace")
    # the header the module writes: "#!" on line 1 and exactly HEADER_LINE on line 2 (a comment that merely
    # mentions the marker elsewhere does not make a file the module's)
    lines = content[:4096].split("\n", 2)
    return lines[0].startswith("#!") and len(lines) > 1 and lines[1].rstrip("\r") == HEADER_LINE


def describe_file(content: bytes) -> str:
    """What the start of a file (``content``) looks like, for the messages: an ELF binary, a script, ..."""
    if content == b"":
        return "an empty file"
    if content.startswith(b"\x7fELF"):
        return "an ELF binary"
    if content.startswith(b"#!"):
        line = content[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        line = "".join(c for c in line if c.isprintable())[:80]
        return f"a #!{line} script" if line else "a script"
    if b"\0" in content:
        return "a binary file"
    return "a text file"


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, for the messages."""
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@dataclass
class Found:
    """What is at ``path``: nothing (``lst`` ``None``), a file (``lst`` and ``st`` its ``lstat``), or a
    symbolic link (``link``, its text) with ``st`` the ``stat`` of the file it points to (``None`` for a
    link that cannot be followed, ``error`` says why)."""

    path: str
    lst: t.Optional[os.stat_result] = None
    link: t.Optional[str] = None
    st: t.Optional[os.stat_result] = None
    error: t.Optional[OSError] = None

    @property
    def target(self) -> t.Optional[str]:
        return link_target(self.path, self.link) if self.link is not None else None

    @property
    def dangling(self) -> bool:
        return self.link is not None and self.st is None

    def is_what(self, kind: str) -> str:
        """``PATH is a FIFO``, or ``PATH is a symlink to a FIFO (TARGET)``."""
        if self.link is None:
            return f"{self.path} is {kind}"
        return f"{self.path} is a symlink to {kind} ({self.target})"

    def missing_target(self) -> str:
        """``PATH is a symlink to TARGET, which does not exist`` (or cannot be followed, and why)."""
        exc = self.error
        why = ("does not exist" if exc is None or exc.errno == errno.ENOENT
               else f"cannot be followed ({_reason(exc)})")
        return f"{self.path} is a symlink to {self.target}, which {why}"


def inspect_path(path: str) -> Found:
    """What is at ``path`` (:class:`Found`), without opening it (a FIFO would block).

    Raises :class:`WrapperError` when ``path`` cannot even be looked at (``lstat`` fails other than
    with ``ENOENT``).
    """
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return Found(path)
    except OSError as exc:
        raise WrapperError(
            f"cannot look at {path} (lstat): {_reason(exc)}; {path} was not changed. Fix: let root read the "
            "directory of path (not an NFS export with root_squash, not a stale mount), then run again"
        ) from None
    if not stat.S_ISLNK(lst.st_mode):
        return Found(path, lst, st=lst)
    try:
        link = os.readlink(path)
    except OSError:  # replaced by something else meanwhile: judged as a link that cannot be followed
        return Found(path, lst, link="?")
    try:
        return Found(path, lst, link, os.stat(path))
    except OSError as exc:  # ENOENT (dangling), ELOOP, EACCES
        return Found(path, lst, link, None, exc)


def check_replaceable(path: str, force: bool, found: t.Optional[Found] = None) -> t.Optional[UntrustedPathError]:
    """Refuse to replace a file at ``path`` that this module did not write, unless ``force``.

    The same test as ``state=absent`` (:func:`is_managed_wrapper`: the ``#!`` line and the
    :data:`MARKER` header); a missing file (or one that cannot be read, which the write then reports)
    passes. A symbolic link is judged by the file it points to; one that points nowhere (dangling)
    is refused unless ``force``, the module cannot tell whether it wrote it. A FIFO, socket or device
    at ``path`` (or a link to one) is refused even with ``force`` (reading a FIFO would block, and the
    module only replaces files).

    A regular file at ``path`` that a user other than root can change (owner not root, group- or
    other-writable: :func:`_path_safety.file_problem`) is refused unless ``force``: its content cannot
    be trusted, so it is not repaired in place. With ``force`` the weakness is returned, and the caller
    replaces the file by a new one (never a ``chmod``/``chown`` of the old inode, which its owner may
    hold open for writing).
    """
    found = found if found is not None else inspect_path(path)
    if found.lst is None:
        return None
    if found.dangling:
        if force:
            return None
        raise WrapperError(
            f"{found.missing_target()}: this module cannot tell whether it wrote the link, so it is not replaced. "
            f"Fix: remove the link yourself (rm {path}), or set force: true to replace the link by the wrapper "
            f"(nothing is written at {found.target})"
        )
    mode = t.cast(os.stat_result, found.st).st_mode
    if stat.S_ISDIR(mode):  # check_paths says so
        return None
    if not stat.S_ISREG(mode):
        raise WrapperError(
            f"{found.is_what(_kind(mode))}, not a wrapper; remove it yourself or choose another path for the wrapper")
    if not force:
        content = read_bytes(path, 4096, best_effort=True)
        if content is not None and not is_managed_wrapper(content):
            raise WrapperError(
                f"{path} exists and was not written by this module ({describe_file(content)} without the '{MARKER}' "
                "header): refusing to replace it. Choose another path for the wrapper, "
                "or set force: true to replace it (with backup: true to keep a copy)"
            )
    if found.link is not None:
        return None  # the link itself is replaced: its target is not kept and not run again
    weak = file_problem(path, found.lst, "wrapper path")
    if weak is None or force:
        return weak
    raise WrapperError(
        f"{path} can be changed by users other than root: it is {' and '.join(weak.reasons)} (uid {weak.uid}, "
        f"mode {stat.S_IMODE(weak.mode):04o}); libvirt runs it as root, so its content cannot be trusted and it "
        f"is not repaired in place. Fix: {weak.fix} once you have checked its content, or set force: true to "
        "replace it by a new root-owned wrapper (with backup: true to keep a copy)"
    )


def check_paths(path: str, binary: str) -> None:
    """Refuse wrapper/binary combinations that cannot work or would recurse."""
    for name, value in (("path", path), ("binary", binary)):
        if not value or not os.path.isabs(value):
            raise WrapperError(f"{name} must be an absolute path, got {value!r}")
        if "\n" in value or "\0" in value or "\r" in value:
            raise WrapperError(f"{name} must not contain newline or NUL characters: {value!r}")
    if os.path.normpath(path) == os.path.normpath(binary):
        raise WrapperError(
            f"binary {binary} is the wrapper path itself; the wrapper would exec itself forever. "
            "Point binary at the real virtiofsd"
        )
    if os.path.realpath(path) == os.path.realpath(binary):
        raise WrapperError(
            f"binary {binary} resolves to the wrapper path {path} ({os.path.realpath(binary)}); the wrapper would "
            "exec itself forever. Point binary at the real virtiofsd"
        )
    if os.path.isdir(path):
        link = symlink_at(path)
        if link is not None:
            raise WrapperError(f"path {path} is a symlink to a directory ({link_target(path, link)}); give the file "
                               "name of the wrapper")
        raise WrapperError(f"path {path} is a directory; give the file name of the wrapper")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise WrapperError(f"path {path} ends in '/' but {parent} is a file, not a directory; give the file "
                               f"name of the wrapper without the trailing '/' ({parent.rstrip('/')})"
                               if path.endswith("/") else
                               f"the directory of path, {parent}, is not a directory; give a path inside a directory")
        raise WrapperError(f"the directory of path, {parent}, does not exist; create it first")
    if not os.path.exists(binary):
        raise WrapperError(f"binary {binary} does not exist; install virtiofsd first")
    if not os.path.isfile(binary):
        raise WrapperError(f"binary {binary} is not a regular file")
    if not os.access(binary, os.X_OK):
        raise WrapperError(f"binary {binary} is not executable; fix its mode (e.g. 0755)")
    if is_managed_wrapper(read_bytes(binary, 4096, best_effort=True)):
        raise WrapperError(
            f"binary {binary} is itself a wrapper managed by {MODULE_NAME}; point binary at the real virtiofsd"
        )
    # libvirt runs both as root: only root may be able to change them (docs/troubleshooting.md). The
    # wrapper's directories are checked here; the file at path itself is replaced by a new root-owned file,
    # what is there now is judged by check_replaceable (a symlink at path is not followed: it is replaced).
    try:
        weak = directory_problem(path, "wrapper path")
        if weak is not None:
            raise weak
        check_root_only(binary, "binary")
    except UntrustedPathError as exc:
        raise WrapperError(str(exc)) from exc
    except OSError as exc:  # ELOOP, EACCES on the way
        raise WrapperError(
            f"cannot check who can change {exc.filename or path} (the way to path or binary): {_reason(exc)}; "
            f"{path} was not changed. Fix: make the directories and links on the way resolvable, then run again"
        ) from None


def check_daemon(info: DaemonInfo) -> None:
    """Refuse anything but the Rust virtiofsd (the one check is :func:`_virtiofsd.check_daemon`)."""
    check_rust_daemon(info, f"binary {info.path}", fix=". Install the Rust virtiofsd and point binary at it", error=WrapperError)


def _comment(text: str) -> str:
    """Make ``text`` safe inside a ``#`` comment line."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def render_script(binary: str, argv: t.Sequence[str]) -> str:
    """Render the wrapper script for ``binary`` with the options ``argv``."""
    qbin = shlex.quote(binary)
    lines = [
        "#!/bin/sh",
        HEADER_LINE,
        "# Local changes are overwritten. libvirt runs it as <binary path=.../> of a virtio-fs share.",
        f"# daemon: {_comment(binary)}",
    ]
    if argv:
        lines.append("# options, appended after libvirt's own arguments (the last duplicate wins):")
        lines.extend(f"#   {_comment(shlex.quote(arg))}" for arg in argv)
    else:
        lines.append("# options: none")
    lines += [
        "# The capability probe (exactly '--print-capabilities') gets the daemon without extra options.",
        'if [ "$#" -eq 1 ] && [ "$1" = "--print-capabilities" ]; then',
        f"    exec {qbin} --print-capabilities",
        "fi",
        " ".join([f"exec {qbin} \"$@\""] + [shlex.quote(arg) for arg in argv]),
        "",
    ]
    return "\n".join(lines)


def plan_wrapper(
    path: str,
    binary: str,
    daemon: DaemonInfo,
    options: t.Optional[t.Mapping[str, t.Any]] = None,
    extra_args: t.Optional[t.Sequence[t.Any]] = None,
) -> WrapperPlan:
    """Validate everything that can be validated without running anything and render.

    ``daemon`` comes from ``_virtiofsd.probe_daemon(binary, run)``. Raises
    :class:`WrapperError`; options problems name the option, the installed version and
    the version that added the option.
    """
    check_paths(path, binary)
    check_daemon(daemon)  # guarantees a Rust daemon with a version
    version = t.cast(t.Tuple[int, int, int], daemon.version)
    try:
        extra, extra_origins = parse_extra_args(extra_args)
        values, origins = merge_values(options, extra, extra_origins)
        warnings = validate_values(values, version, daemon.supported_options or None, origins)
    except OptionsError as exc:
        raise WrapperError(
            f"invalid virtiofsd options for {binary} (virtiofsd {format_version(version)}): {exc}"
        ) from None
    argv = render_values(values, version)
    return WrapperPlan(path, binary, argv, render_script(binary, argv), daemon, warnings)


def check_argv_with_daemon(binary: str, argv: t.Sequence[str], run: RunCallable) -> None:
    """Let the daemon's own parser check ``argv`` without starting it.

    Runs ``binary --print-capabilities ARGV...``: virtiofsd parses every argument (rc 2 on a
    bad one) and then only prints its capabilities.
    """
    if not argv:
        return
    cmd = [binary, "--print-capabilities"] + list(argv)
    rc, out, err = run(cmd)
    if rc != 0:
        raise WrapperError(
            f"virtiofsd rejected the options (rc {rc}) when checked with {' '.join(shlex.quote(c) for c in cmd)}: "
            f"{short_output(err or out)}"
        )
    try:
        parse_capabilities(out)
    except VirtiofsdError as exc:
        raise WrapperError(f"checking the options with {binary}: {exc}") from None


def self_test(path: str, daemon: DaemonInfo, run: RunCallable) -> t.Dict[str, t.Any]:
    """Run the written wrapper the way libvirt does and check the answers.

    * ``WRAPPER --version`` must report the daemon's Rust version;
    * ``WRAPPER --print-capabilities`` (libvirt's probe) must print JSON of type ``fs``;
    * for virtiofsd >= 1.7.1 also ``WRAPPER --print-capabilities --print-capabilities``,
      which takes the full ``exec BINARY "$@" OPTIONS`` line, so the daemon parses the
      options exactly as the script passes them.

    Returns ``{"version": ..., "capabilities": ...}``; raises :class:`WrapperError`.
    """
    rc, out, err = run([path, "--version"])
    if rc != 0:
        raise WrapperError(f"self-test: {path} --version failed with rc {rc}: {short_output(err or out)}")
    ver = parse_version_output(out)
    if not ver.is_rust or ver.version != daemon.version:
        raise WrapperError(
            f"self-test: {path} --version printed {short_output(out)!r}, expected 'virtiofsd {daemon.version_string}'"
        )
    rc, out, err = run([path, "--print-capabilities"])
    if rc != 0:
        raise WrapperError(f"self-test: {path} --print-capabilities failed with rc {rc}: {short_output(err or out)}")
    try:
        caps = parse_capabilities(out)
    except VirtiofsdError as exc:
        raise WrapperError(f"self-test: {path}: {exc}") from None
    if daemon.version is not None and tuple(daemon.version) >= _OVERRIDE_SELF_SINCE:
        cmd = [path, "--print-capabilities", "--print-capabilities"]
        rc, out, err = run(cmd)
        if rc != 0:
            raise WrapperError(
                f"self-test: {' '.join(cmd)} (the full exec line with the options) failed with rc {rc}: "
                f"{short_output(err or out)}"
            )
        try:
            parse_capabilities(out)
        except VirtiofsdError as exc:
            raise WrapperError(f"self-test: {' '.join(cmd)}: {exc}") from None
    return {"version": ver.version_string, "capabilities": caps}


# ------------------------------------------------------------------ the virtiofsd_wrapper module
# ``apply_present`` and ``apply_absent`` are the whole of the module's work. They fill
# ``result`` (the module's return values) as they go and raise :class:`WrapperError` or
# :class:`VirtiofsdError` for a failure, with ``result`` saying what was (not) done.

#: ``move(src, dest)``; the module's also takes ``fresh=True``: do not copy the old file's owner, mode and
#: SELinux context to the new one (``atomic_move(keep_dest_attrs=False)``, the default context instead)
MoveCallable = t.Callable[..., t.Any]
BackupCallable = t.Callable[[str], str]


def check_absolute(path: str) -> None:
    if not os.path.isabs(path):
        raise WrapperError(f"path must be an absolute path, got {path!r}")


#: the attributes a written wrapper has, in the form of Ansible's ``diff`` (``ansible.builtin.file``)
WRAPPER_ATTRS: t.Dict[str, t.Any] = {"mode": f"0{WRAPPER_MODE:03o}", "owner": 0, "group": 0}


def attrs_of(path: str) -> t.Dict[str, t.Any]:
    """``mode`` (octal text such as ``0755``), ``owner`` and ``group`` (numeric) of ``path``."""
    st = os.stat(path)
    return {"mode": f"0{st.st_mode & 0o7777:03o}", "owner": st.st_uid, "group": st.st_gid}


def attrs_differ(path: str) -> bool:
    """True when ``path`` is not ``root:root`` with :data:`WRAPPER_MODE`."""
    return attrs_of(path) != WRAPPER_ATTRS


def _wrong_attrs(attrs: t.Mapping[str, t.Any]) -> t.List[str]:
    return [key for key in WRAPPER_ATTRS if attrs[key] != WRAPPER_ATTRS[key]]


def attrs_diff(path: str, attrs: t.Mapping[str, t.Any]) -> t.Dict[str, t.Dict[str, t.Any]]:
    """The ``diff`` of fixing only the attributes ``attrs`` (from :func:`attrs_of`) of ``path``.

    The shape ``ansible.builtin.file`` reports: ``{"before": {"path": ..., "mode": "0700"},
    "after": {"path": ..., "mode": "0755"}}``, with only the keys that change.
    """
    keys = _wrong_attrs(attrs)
    return {
        "before": dict({"path": path}, **{key: attrs[key] for key in keys}),
        "after": dict({"path": path}, **{key: WRAPPER_ATTRS[key] for key in keys}),
    }


def _attrs_text(attrs: t.Mapping[str, t.Any], keys: t.Sequence[str]) -> str:
    return ", ".join(f"{key} {attrs[key]}" for key in keys)


def file_diff(
    path: str, before: t.Optional[bytes], after: t.Optional[bytes], attrs: t.Optional[t.Mapping[str, t.Any]] = None,
    link: t.Optional[str] = None,
) -> t.Dict[str, str]:
    """An Ansible ``diff`` dict for the file ``path``.

    ``attrs`` (from :func:`attrs_of`) are the attributes of the file being replaced: those that the
    write changes are named in the headers, ``PATH (mode 0700)`` before and ``PATH (mode 0755)`` after.
    ``link`` is the text of the symbolic link being replaced (``before`` is then empty: the link
    has no content of its own); the before header says ``PATH (symlink -> LINK)``.
    """
    keys = _wrong_attrs(attrs) if attrs is not None else []
    if link is not None:
        before_header = f"{path} (symlink -> {link})"
    else:
        before_header = f"{path} ({_attrs_text(attrs, keys)})" if attrs is not None and keys else path
    return {
        "before_header": before_header,
        "after_header": f"{path} ({_attrs_text(WRAPPER_ATTRS, keys)})" if keys else path,
        "before": diff_text(before),
        "after": diff_text(after),
    }


def diff_text(content: t.Optional[bytes]) -> str:
    """``content`` as diff text: UTF-8 text as it is, anything else (an ELF binary, Latin-1 bytes) as the
    placeholder ``<binary file, N bytes, sha256 HEX>``; the result never holds surrogates (the controller
    refuses those and would drop the whole result)."""
    if not content:
        return ""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary file, {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()}>"


def symlink_at(path: str) -> t.Optional[str]:
    """The text of the symbolic link ``path`` (``os.readlink``), ``None`` when ``path`` is not a link."""
    try:
        return os.readlink(path)
    except OSError:  # EINVAL: not a link; ENOENT: nothing there
        return None


def link_target(path: str, link: str) -> str:
    """The absolute path the link ``path`` (with the text ``link``) names, not resolved any further."""
    return os.path.normpath(os.path.join(os.path.dirname(path), link))


def _cannot_read(path: str, exc: OSError) -> WrapperError:
    return WrapperError(
        f"cannot read {path}: {_reason(exc)}; {path} was not changed. Fix: let root read it (not on an NFS "
        "export with root_squash, no I/O error on the disk), then run again"
    )


def _read_existing(path: str) -> t.Tuple[t.Optional[bytes], t.Optional[t.Dict[str, t.Any]]]:
    """The bytes and :func:`attrs_of` of the regular file ``path`` (``None, None`` when it is gone)."""
    try:
        before = read_bytes(path)
        return before, (attrs_of(path) if before is not None else None)
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def apply_absent(
    result: t.Dict[str, t.Any],
    path: str,
    check_mode: bool,
    diff: bool,
    backup: t.Optional[BackupCallable],
    warn: t.Optional[t.Callable[[str], t.Any]] = None,
) -> None:
    """Remove the wrapper at ``path``; refuse a file this module did not write.

    A symbolic link at ``path`` is judged by the file it points to (it must be a wrapper of this
    module); then the link itself is removed, never its target: the diff shows the link
    (``PATH (symlink -> TARGET)``, no content) as before, a warning names the target left in place,
    and no backup is made (nothing of the target is removed). A link that points nowhere is refused:
    the module cannot tell whether it wrote it. A failing ``unlink`` is a :class:`WrapperError`
    saying what is left.
    """
    found = inspect_path(path)
    if found.lst is None:
        return
    if found.dangling:
        raise WrapperError(
            f"{found.missing_target()}: this module cannot tell whether it wrote the link, so it is not removed "
            f"(force: true does not change that). Fix: remove the link yourself (rm {path}) if it is yours to delete"
        )
    mode = t.cast(os.stat_result, found.st).st_mode
    if stat.S_ISDIR(mode):
        if found.link is not None:
            raise WrapperError(f"path {found.is_what('a directory')}, not a wrapper")
        raise WrapperError(f"path {path} is a directory, not a wrapper")
    if not stat.S_ISREG(mode):
        raise WrapperError(f"{found.is_what(_kind(mode))}, not a wrapper: refusing to remove it; remove it yourself "
                           "if it really is yours to delete")
    before, _attrs = _read_existing(path)
    if not is_managed_wrapper(before):
        what = path if found.link is None else f"{path} (a symlink to {found.target})"
        raise WrapperError(
            f"{what} is not a wrapper written by this module (no '{MARKER}' header): "
            "refusing to remove it; remove it yourself if it really is yours to delete"
        )
    result["changed"] = True
    if found.link is not None and warn is not None:
        warn(f"{path} is a symlink to {found.target}; the link is removed, {found.target} is left in place")
    if diff:
        result["diff"] = file_diff(path, None if found.link is not None else before, None, link=found.link)
    if check_mode:
        return
    if backup is not None and before is not None and found.link is None:  # a link: its target stays, no copy
        try:
            result["backup_file"] = _backup(backup, path)
        except WrapperError:
            result["changed"] = False  # nothing was removed, no copy is left
            raise
    try:
        os.unlink(path)
    except OSError as exc:
        result["changed"] = "backup_file" in result
        kept = f" (the backup {result['backup_file']} was made)" if "backup_file" in result else ""
        raise WrapperError(
            f"cannot remove {path} (unlink): {_reason(exc)}; {path} is left in place{kept} and libvirt can still "
            "run it. Fix: let root remove files in its directory (the directory and the file not immutable: lsattr, "
            "chattr -i; the file system not read-only, not a read-only bind mount), then run again"
        ) from None
    forget_attribute_repair(path)


def apply_present(
    result: t.Dict[str, t.Any],
    path: str,
    binary: str,
    options: t.Optional[t.Mapping[str, t.Any]],
    extra_args: t.Sequence[str],
    run: RunCallable,
    check_mode: bool,
    diff: bool,
    backup: t.Optional[BackupCallable],
    move: t.Optional[MoveCallable],
    warn: t.Callable[[str], t.Any],
    force: bool = False,
) -> None:
    """Write the wrapper for ``binary`` at ``path`` (root-owned, :data:`WRAPPER_MODE`).

    A file at ``path`` this module did not write is refused (:func:`check_replaceable`), in check
    mode too, unless ``force``.

    The new wrapper is written to a temporary file next to ``path`` (root-owned,
    :data:`WRAPPER_MODE`, the name :func:`_files.remove_leftovers` cleans up) and self-tested
    there, the way libvirt runs it; only when that passes is it moved over ``path``. When the
    self-test fails the temporary file is removed, ``path`` is not touched at all (same inode,
    bytes, mode, mtime and ctime, so :mod:`_restart` reports no restart for it), and
    :class:`WrapperError` is raised with ``result["changed"]`` false.

    A symbolic link at ``path`` is replaced by the regular file (the move renames over the link), its
    target is left as it is: the diff shows the link (``PATH (symlink -> TARGET)``, no content) as
    before, and a warning (in check mode too) names the target. A link that points nowhere needs
    ``force``.

    A file at ``path`` others can change (owner not root, group- or other-writable) needs ``force``;
    then it is replaced by a new file (``content_changed`` true, also for the same bytes) and the
    move is told not to copy the old file's attributes (``fresh``). A mode or group that gives
    nobody else write access is repaired in place (``chmod``/``chown``, ``content_changed`` false).
    ``result["realpath"]`` is :func:`resolved_path` of ``path``.
    """
    # paths first: probing a missing or recursive binary would only give a vague error
    check_paths(path, binary)
    found = inspect_path(path)
    untrusted = check_replaceable(path, force, found)
    daemon = probe_daemon(binary, run)
    plan = plan_wrapper(path, binary, daemon, options, extra_args)
    check_argv_with_daemon(binary, plan.argv, run)

    for warning in plan.warnings:
        warn(warning)
    result.update(argv=plan.argv, daemon_version=plan.daemon_version, realpath=resolved_path(path))

    after = plan.script.encode("utf-8")
    link = found.link
    if link is not None:
        # the move replaces the link itself (rename(2) does not follow it): its target is not written,
        # not chmod-ed and not backed up; the diff and the warning say so
        target = found.target
        warn(f"{path} is a symlink to {target}; it is replaced by a regular file, {target} is left unchanged")
        before, attrs = None, None
    else:
        before, attrs = _read_existing(path) if found.lst is not None else (None, None)
    if untrusted is not None:
        # force: true and a file others could have changed: a new file in its place, never a chmod/chown of
        # this inode (its owner may hold it open for writing), even when the bytes are the same
        warn(f"{path} can be changed by users other than root ({' and '.join(untrusted.reasons)}); with force: true "
             "it is replaced by a new root-owned wrapper (mode 0755), not repaired in place")
    content_changed = link is not None or before != after or untrusted is not None
    attrs_changed = attrs is not None and attrs != WRAPPER_ATTRS
    result["changed"] = content_changed or attrs_changed
    result["content_changed"] = content_changed  # what a running daemon could care about (not a mode repair)
    if diff and content_changed:
        result["diff"] = file_diff(path, before, after, attrs, link)
    elif diff and attrs is not None and attrs_changed:
        result["diff"] = attrs_diff(path, attrs)
    if content_changed and before is not None and not is_managed_wrapper(before) and backup is None:
        warn(f"{path} was not written by this module and is replaced; use backup: true to keep a copy")
    if check_mode:
        return
    remove_leftovers(path)  # temporary files of runs killed mid-write or mid-self-test (the caller holds the lock)
    if not result["changed"]:
        return

    if os.geteuid() != 0:
        raise WrapperError("writing a root-owned wrapper needs root; run the task with become: true")

    if not content_changed:
        # a mode/owner repair moves ctime: it is recorded, so that running daemons are not reported as
        # needing a restart for it (the bytes they run did not change; _restart's module doc)
        try:
            unrepaired = os.stat(path)
        except OSError as exc:
            raise _cannot_read(path, exc) from None
        try:
            set_attributes(path, WRAPPER_MODE, (0, 0), changed=False, state=lambda: (
                f"the content of {path} was not changed; it now has {describe_attrs(path)}"))
        except AttributesError as exc:
            try:
                result["changed"] = attrs_of(path) != attrs  # a chmod that worked before the chown failed
            except OSError:
                result["changed"] = True  # unknown: the message names what it could read
            raise WrapperError(str(exc)) from None
        record_attribute_repair(path, unrepaired, after)
        return

    result["changed"] = result["content_changed"] = False  # until the new wrapper is in place
    try:
        # same directory, owner and mode as the final file: it passes the same path checks and runs the same way
        tmp = write_temporary(path, after, mode=WRAPPER_MODE, owner=(0, 0))
    except (WriteError, AttributesError) as exc:
        raise WrapperError(str(exc)) from None
    try:
        try:
            self_test(tmp, plan.daemon, run)
        except WrapperError as exc:
            kept = (f"{path} was not changed" if before is not None or link is not None
                    else f"no wrapper was written at {path}")
            loop = (f" (self-test of the new wrapper: if {binary} runs {path} itself, "
                    "the two exec each other forever)" if isinstance(exc, CommandTimeout) else "")
            raise WrapperError(
                f"{exc}{loop}; {kept}: the new wrapper was tested as a temporary file next to it, "
                "which is removed, and was not put in place"
            ) from None
        if backup is not None and before is not None:
            result["backup_file"] = _backup(backup, path)
        # a link, or a file others can change, must not lend the new wrapper its owner and mode on the way
        # (atomic_move copies them from the old file before its rename): the move gets fresh=True
        fresh = link is not None or untrusted is not None
        try:
            install_temporary(tmp, path, move=(_fresh_move(move) if fresh and move is not None else move),
                              mode=WRAPPER_MODE, owner=(0, 0))
        except WriteError as exc:
            raise WrapperError(str(exc)) from None
        except AttributesError as exc:  # after the move: the new wrapper is in place, its mode or owner not yet
            result["changed"] = result["content_changed"] = True
            raise WrapperError(str(exc)) from None
        result["changed"] = result["content_changed"] = True
        forget_attribute_repair(path)  # new bytes, a new inode: an older repair record no longer applies
    finally:
        try:
            remove_file(tmp)
        except OSError:
            pass  # the next run's remove_leftovers takes it


def _fresh_move(move: MoveCallable) -> MoveCallable:
    """``move`` told not to copy the old file's attributes (the module's move takes ``fresh``)."""
    return lambda src, dest: move(src, dest, fresh=True)


def resolved_path(path: str) -> str:
    """Where the wrapper written at ``path`` is, with every symbolic link resolved.

    The directory of ``path`` resolved, with the file name of ``path``: a symbolic link at ``path`` is
    replaced by the wrapper, so its target does not count. What AppArmor and SELinux see when libvirt
    runs the wrapper (they mediate the resolved path).
    """
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


#: seconds one run of the daemon or of the wrapper (``--version``, ``--help``, ``--print-capabilities``) may take
COMMAND_TIMEOUT = 30


class CommandTimeout(WrapperError):
    """A run of the daemon or the wrapper did not end within :data:`COMMAND_TIMEOUT` (it was killed)."""


def run_with_timeout(argv: t.List[str], timeout: t.Optional[float] = None) -> t.Tuple[int, str, str]:
    """Run ``argv`` (stdin ``/dev/null``, ``C`` locale) in a new session; ``(rc, stdout, stderr)``.

    The output is decoded as UTF-8 with invalid bytes replaced, so that no message built from it carries
    surrogates. A run that takes longer than ``timeout`` seconds (default :data:`COMMAND_TIMEOUT`) is killed with its whole process group
    (``SIGKILL``) and :class:`CommandTimeout` is raised naming the command, the limit and the fix. An
    :class:`OSError` starting it (``ENOEXEC``, ``EACCES``, noexec mount) is raised as it is.
    """
    timeout = COMMAND_TIMEOUT if timeout is None else timeout
    env = dict(os.environ, LANG="C", LC_ALL="C", LC_MESSAGES="C")
    # AnsibleModule.run_command has no time limit (and cannot kill a process group): Popen with communicate(timeout)
    proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
        start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a process that left the group holds the pipes: give up on them
            pass
        cmd = " ".join(shlex.quote(a) for a in argv)
        raise CommandTimeout(
            f"{cmd} did not finish within {timeout:g} s and was killed (a virtiofsd answers at once). Fix: point "
            "binary at the real virtiofsd, not a program that waits for input or runs the wrapper path again "
            "(a loop), then run again"
        ) from None
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _backup(backup: BackupCallable, path: str) -> str:
    """``backup(path)``; a failure is a :class:`WrapperError` (``path`` is not changed then)."""
    try:
        return backup(path)
    except BackupError as exc:
        raise WrapperError(str(exc)) from None
    except OSError as exc:
        raise WrapperError(
            f"cannot back up {path}: {_reason(exc)}; {path} was not changed. Fix: free space in its directory or "
            "make it writable by root, or set backup: false, then run again"
        ) from None


def run_reporting_os_errors(run_command: t.Callable[[t.List[str]], t.Tuple[int, str, str]]) -> RunCallable:
    """``run_command`` with an :class:`OSError` turned into a failed run (rc 126, the error on stderr).

    An OS error (e.g. the wrapper's file system is mounted noexec) must come back as a failed run
    so that the self-test restores the previous file, not end the module there.
    """

    def run(argv: t.List[str]) -> t.Tuple[int, str, str]:
        try:
            return run_command(argv)
        except OSError as exc:
            return 126, "", f"cannot execute {argv[0]}: {exc}"

    return run


def apply(
    result: t.Dict[str, t.Any],
    state: str,
    path: str,
    binary: t.Optional[str],
    options: t.Optional[t.Mapping[str, t.Any]],
    extra_args: t.Sequence[str],
    run: RunCallable,
    check_mode: bool,
    diff: bool,
    backup: t.Optional[BackupCallable],
    move: t.Optional[MoveCallable],
    warn: t.Callable[[str], t.Any],
    force: bool = False,
) -> None:
    """The whole ``virtiofsd_wrapper`` run for ``state`` (one of :data:`STATES`) under the lock of ``path``.

    One run at a time per path, so that each run's write and self-test see its own wrapper.
    A lock held too long by another run raises :class:`WrapperError` saying ``path`` was not changed.
    """
    if state not in STATES:
        raise WrapperError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    check_absolute(path)
    try:
        with path_lock(path):
            if state == "absent":
                apply_absent(result, path, check_mode, diff, backup, warn)
            else:
                if not binary:
                    raise WrapperError("binary is required with state=present")
                result["binary"] = binary
                apply_present(result, path, binary, options, extra_args, run, check_mode, diff, backup, move, warn,
                              force)
    except LockTimeout as exc:
        raise WrapperError(f"{exc}; {path} was not changed") from None
