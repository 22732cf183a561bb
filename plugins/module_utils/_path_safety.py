# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a file that root runs can only be changed by root.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.

libvirt starts a share's ``<binary path>`` as root. A wrapper or daemon that another user can
replace, or that sits in a directory another user can rename entries of, is a way to root. The
rule is the one of OpenSSH ``StrictModes`` and sudo: the file and every directory on the way to
it from ``/`` must be owned by root and not writable by group or others. A directory owned by
root with the sticky bit (``/tmp``) is accepted: other users may create entries there but not
rename or remove root's. Symbolic links are followed component by component, so the
directories of every link on the way are checked as well as the real path.

A component that does not exist ends the walk: what exists up to there is checked (a wrapper
that is about to be written is checked through its directory and the directory's parents).

Share sources (:func:`source_findings`, :func:`root_source_error`) have a rule of their own: a
share's ``<source dir>`` is not run but handed to virtiofsd (root) as written (``--shared-dir`` or
``-o source=``), which resolves it when the domain starts (virtiofsd's ``Sandbox::new`` canonicalises the path) and
gives the guest that tree. So ``/`` (or a bind mount of it) and ``/proc`` are refused, a symbolic
link on the way that another user can change (the link, its directory or a directory above) is
refused, and a safe link or a parent directory another user can rename entries of (the source
could be swapped for another directory or a link before the next start) is a warning. The
source directory's own owner and mode are the operator's choice (who may use the share on the
host) and are not checked.
"""

from __future__ import annotations

import os
import stat
import typing as t

MAX_SYMLINKS = 40
TRUSTED_UIDS: t.Tuple[int, ...] = (0,)


class UntrustedPathError(Exception):
    """A path whose file or one of its directories can be changed by a user other than root.

    ``path`` is the checked path, ``weak`` the component that is at fault, ``uid`` and
    ``mode`` its owner and permission bits, ``fix`` a shell command that makes it safe.
    """

    def __init__(self, path: str, weak: str, uid: int, mode: int, reasons: t.List[str], fix: str,
                 what: str = "path") -> None:
        self.path = path
        self.weak = weak
        self.uid = uid
        self.mode = mode
        self.reasons = reasons
        self.fix = fix
        self.what = what
        where = "" if weak == path else f" because of {weak}"
        super().__init__(
            f"{what} {path} can be changed by users other than root{where}: {weak} is "
            f"{' and '.join(reasons)} (uid {uid}, mode {stat.S_IMODE(mode):04o}); libvirt runs it "
            f"as root, so it is refused. Fix: {fix}")


def _weakness(st: os.stat_result, trusted_uids: t.Sequence[int]) -> t.List[str]:
    reasons = []
    if st.st_uid not in trusted_uids:
        reasons.append(f"owned by uid {st.st_uid}, not root")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky_root_dir = (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
                       and st.st_uid in trusted_uids)
    if writable and not sticky_root_dir:
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others",
               stat.S_IWGRP | stat.S_IWOTH: "group and others"}[writable]
        reasons.append(f"writable by {who}")
    return reasons


def _fix(component: str, st: os.stat_result, trusted_uids: t.Sequence[int]) -> str:
    parts = []
    if st.st_uid not in trusted_uids:
        parts.append(f"chown root:root {component}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        parts.append(f"chmod go-w {component}")
    return " && ".join(parts)


def walk(path: str) -> t.Iterator[t.Tuple[str, os.stat_result]]:
    """``(component, lstat)`` of ``/`` and every real component on the way to ``path``.

    Symbolic links are resolved one by one (their targets walked from the link's directory,
    which is already yielded); the walk stops at the first component that does not exist.
    Raises :class:`OSError` (``ELOOP``) for too many links, other ``OSError`` s as they come.
    """
    for component, st, _target in _walk(path):
        if _target is None:
            yield component, st


def links(path: str) -> t.Iterator[t.Tuple[str, os.stat_result, str]]:
    """``(link, lstat of the link, its target)`` of every symbolic link resolved on the way to
    ``path`` (the link's directory is a real directory, see :func:`walk`), in walk order."""
    for component, st, target in _walk(path):
        if target is not None:
            yield component, st, target


def _walk(path: str) -> t.Iterator[t.Tuple[str, os.stat_result, t.Optional[str]]]:
    """:func:`walk` with the links: ``(component, lstat, None)`` for a real component,
    ``(link, lstat, target)`` for each link resolved."""
    current = "/"
    yield current, os.lstat(current), None
    pending = [c for c in path.split("/") if c not in ("", ".")]
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            yield candidate, st, target
            if target.startswith("/"):
                current = "/"
            pending[:0] = [c for c in target.split("/") if c not in ("", ".")]
            continue
        yield candidate, st, None
        current = candidate


def problem(path: str, what: str = "path",
            trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """The first weakness on the way to ``path`` as an error (not raised), ``None`` when safe."""
    if not os.path.isabs(path):
        raise ValueError(f"{what} must be an absolute path, got {path!r}")
    for component, st in walk(path):
        reasons = _weakness(st, trusted_uids)
        if reasons:
            return UntrustedPathError(path, component, st.st_uid, st.st_mode, reasons,
                                      _fix(component, st, trusted_uids), what)
    return None


def file_problem(path: str, st: os.stat_result, what: str = "path",
                 trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """The weakness of the file ``path`` itself (``st``, its ``lstat``) as an error (not raised), ``None``
    when only root can change it. Its directories are not looked at (:func:`directory_problem`)."""
    reasons = _weakness(st, trusted_uids)
    if not reasons:
        return None
    return UntrustedPathError(path, path, st.st_uid, st.st_mode, reasons, _fix(path, st, trusted_uids), what)


def directory_problem(path: str, what: str = "path",
                      trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """Like :func:`problem`, for the directories on the way to ``path`` only, not ``path`` itself (a
    file about to be replaced: whatever is at ``path`` now, a link included, is not followed)."""
    if not os.path.isabs(path):
        raise ValueError(f"{what} must be an absolute path, got {path!r}")
    for component, st in walk(os.path.dirname(os.path.normpath(path))):
        reasons = _weakness(st, trusted_uids)
        if reasons:
            return UntrustedPathError(path, component, st.st_uid, st.st_mode, reasons,
                                      _fix(component, st, trusted_uids), what)
    return None


def check(path: str, what: str = "path", trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> None:
    """Raise :class:`UntrustedPathError` unless only root can change ``path`` (see module doc)."""
    err = problem(path, what, trusted_uids)
    if err is not None:
        raise err


# ------------------------------------------------------------------------------ share sources

def root_source_error(path: str, what: str = "source") -> t.Optional[str]:
    """Why ``path`` (a share source as written) cannot be shared because it is ``/`` once
    repeated slashes, ``.`` and a trailing slash are folded, or ``None``. No file system access
    (the host role's plan can call it before anything changes); :func:`source_findings` also
    refuses a source that resolves to ``/`` through symbolic links."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    if os.path.normpath(path) not in ("/", "//"):
        return None
    return _root_message(path, what, resolved=False)


def _root_message(path: str, what: str, resolved: bool) -> str:
    how = " (it resolves to '/' through symbolic links)" if resolved else ""
    return (
        f"{what} {path!r} is the root of the host file system{how}: the guest would get the whole host file "
        "system, read and written by virtiofsd as root; share a dedicated directory instead (for example "
        "/srv/shares/NAME)"
    )


def _describe(component: str, st: os.stat_result, reasons: t.List[str]) -> str:
    return f"{component} is {' and '.join(reasons)} (uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"


def _link_weakness(link: str, link_st: os.stat_result, dir_st: os.stat_result) -> t.List[str]:
    """Why a user other than root can change a symbolic link: it is theirs; its directory is
    writable by group or others without the sticky bit (anyone there may replace it), or owned by
    another user (sticky or not, the owner may replace any entry); or a directory above that one
    is owned by another user or writable by group or others (unless root's and sticky): that
    user may rename the directories on the way and put another link in place."""
    reasons = []
    if link_st.st_uid not in TRUSTED_UIDS:
        reasons.append(f"owned by uid {link_st.st_uid}, not root")
    directory = os.path.dirname(link)
    writable = dir_st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not dir_st.st_mode & stat.S_ISVTX:
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others",
               stat.S_IWGRP | stat.S_IWOTH: "group and others"}[writable]
        reasons.append(f"in a directory writable by {who} without the sticky bit "
                       f"(mode {stat.S_IMODE(dir_st.st_mode):04o})")
    if dir_st.st_uid not in TRUSTED_UIDS:
        reasons.append(f"in the directory {directory} owned by uid {dir_st.st_uid}, not root, who may replace the "
                       f"link (mode {stat.S_IMODE(dir_st.st_mode):04o})")
        return reasons
    above = os.path.dirname(directory)
    while True:  # the link's directory is a real path (walk resolves links before it)
        if above == directory:
            break
        try:
            st = os.lstat(above)
        except OSError:
            break
        weak = _weakness(st, TRUSTED_UIDS)
        if weak:
            reasons.append(f"below {_describe(above, st, weak)}, who may rename the directories on the way and "
                           "put another link in place")
            break
        directory, above = above, os.path.dirname(above)
    return reasons


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def proc_source_error(path: str, what: str = "source") -> t.Optional[str]:
    """Why ``path`` (a share source as written, absolute) cannot be shared because it is ``/proc``
    or below it, or ``None``. No file system access. ``/proc/self``, ``/proc/thread-self`` and
    ``/proc/PID`` name the process that resolves them: virtiofsd, not this module, resolves the
    source when the domain starts; and procfs is no directory tree to share."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    norm = os.path.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm != "/proc" and not norm.startswith("/proc/"):
        return None
    return _proc_message(path, what, resolved=None)


def _proc_message(path: str, what: str, resolved: t.Optional[str]) -> str:
    how = f" (through symbolic links it leads to {resolved})" if resolved else ""
    return (
        f"{what} {path!r} is below /proc{how}: procfs is not a directory tree to share, and /proc/self, "
        "/proc/thread-self and /proc/PID name the process that resolves them (virtiofsd resolves the source "
        "when the domain starts, so /proc/self/cwd would be virtiofsd's own directory, not this task's); "
        "write the real directory as the source (readlink -f PATH shows where a /proc link points now)"
    )


def source_findings(path: str, what: str = "source") -> t.Tuple[t.Optional[str], t.List[str]]:
    """``(refusal, warnings)`` for a share source on this host (``path`` absolute, in normal form).

    * refusal: ``path`` is ``/``, resolves to it or is the same directory (a bind mount of ``/``);
      ``path`` is below ``/proc`` as written or through links (:func:`proc_source_error`); or a
      symbolic link on the way to it is owned by a user other than root, sits in a directory
      writable by group or others without the sticky bit or owned by another user, or below a
      directory another user can rename entries of (that user chooses what the guest gets at
      its next start).
    * warnings: a symbolic link on the way (safe as above): the guest gets the resolved
      directory, named with the fix (write the resolved path); a directory above the source (the
      directories of the links included) that another user can rename entries of (owned by
      a user other than root, or writable by group or others unless it is root's and sticky);
      the source itself owned by another user in a sticky directory others can write (its owner
      may rename it there).

    The source may not exist yet (``create_source``): what exists of its path is checked.
    Raises nothing: a path that cannot be walked (a link loop) is a refusal naming the error.
    """
    problem_root = root_source_error(path, what)
    if problem_root:
        return problem_root, []
    problem_proc = proc_source_error(path, what)
    if problem_proc:
        return problem_proc, []
    resolved = os.path.realpath(path)
    exists = os.path.isdir(path)
    if exists and resolved == "/":
        return _root_message(path, what, resolved=True), []
    try:
        found_links = list(links(path))
        components = list(walk(path))
    except OSError as exc:
        return f"{what} {path!r} cannot be checked: {exc.strerror or exc}; fix the symbolic links on the way", []
    through_proc = [c for c, _st in components if c == "/proc" or c.startswith("/proc/")]
    if through_proc:
        return _proc_message(path, what, resolved=through_proc[-1]), []
    if exists:
        try:
            bound_root = _same_file(os.stat(path), os.stat("/"))
        except OSError:
            bound_root = False
        if bound_root:
            return (
                f"{what} {path!r} is the root of the host file system (it is the same directory as '/', for "
                "example a bind mount of /): the guest would get the whole host file system, read and written by "
                "virtiofsd as root; share a dedicated directory instead (for example /srv/shares/NAME)"
            ), []
    warnings: t.List[str] = []
    safe_links = []
    for link, link_st, target in found_links:
        reasons = _link_weakness(link, link_st, os.lstat(os.path.dirname(link)))
        if reasons:
            return (
                f"{what} {path!r} goes through the symbolic link {link} -> {target}, which is "
                f"{' and '.join(reasons)}: whoever can change it chooses the directory the guest gets "
                f"(virtiofsd, running as root, follows it when the domain starts); write the resolved path "
                f"{resolved!r} as the source, or make the link root's in a directory only root can change"
            ), []
        safe_links.append(f"{link} -> {target}")
    if safe_links:
        now = f"the guest gets {resolved!r}" if exists else f"the directory is created as {resolved!r}"
        warnings.append(
            f"{what} {path!r} goes through the symbolic link{'s' if len(safe_links) > 1 else ''} "
            f"{', '.join(safe_links)}: libvirt hands the path as written to virtiofsd, which resolves it "
            f"when the domain starts, so {now} now and a changed link changes what the guest sees at its next "
            f"start; write {resolved!r} as the source to share that directory whatever the link says later"
        )
    weak = []
    fixes = []
    by_path = dict(components)
    for component, st in components:
        if exists and component == resolved:
            parent_st = by_path.get(os.path.dirname(component))
            sticky_open = (parent_st is not None and parent_st.st_mode & stat.S_ISVTX
                           and parent_st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
            if sticky_open and st.st_uid not in TRUSTED_UIDS:
                weak.append(f"{component} is owned by uid {st.st_uid} in the sticky directory "
                            f"{os.path.dirname(component)} others can write (its owner may rename it there)")
                fixes.append(f"move {component} into a directory only root can write")
            continue  # the source's own owner and mode are the operator's choice
        reasons = _weakness(st, TRUSTED_UIDS)
        if reasons:
            weak.append(_describe(component, st, reasons))
            fixes.append(_fix(component, st, TRUSTED_UIDS))
    if weak:
        warnings.append(
            f"{what} {path!r} can be replaced by a user other than root before the domain starts: "
            f"{'; '.join(weak)}; such a user could rename the source away and put another directory or a "
            f"symbolic link (to / or /etc) in its place, and virtiofsd (root) would share that with the guest. "
            f"Fix: {'; '.join(fixes)}; or share a directory whose parents only root can change (for example "
            "below /srv)"
        )
    return None, warnings
