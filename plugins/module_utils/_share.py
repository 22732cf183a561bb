# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share engine: converge the virtio-fs shares of many domains of one libvirt connection
(or of one domain XML file) in one run.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports: the libvirt connection, the per-domain lock and the few
Ansible helpers (setting owner/group/mode of a created directory, ``atomic_move``,
``backup_local``) come in through :class:`Host`, so the engine is unit-tested with fakes and
with libvirt-python's ``test:///default`` driver. The module ``virtiofs.libvirt.share`` is
its argument spec, one call of :func:`converge_domains` or :func:`converge_file`, and its exit.

A run has two phases:

1. **Validate everything** before anything is touched: every entry of every domain is parsed
   and checked (tags, paths, options), the host is checked (``binary_path`` executable,
   ``source`` present or creatable and not ``/`` or behind a symbolic link other users can change,
   :func:`_path_safety.source_findings`, ``owner``/``group``/``mode`` valid), every domain is
   looked up, must be persistent, and is patched in memory (tag conflicts with 9p shares,
   NUMA cells with private memory, the libvirt version each requested XML feature needs).
   Any problem anywhere raises :class:`ShareValidationError` naming the domain and the tag;
   nothing has changed then.
2. **Converge each domain** under its lock, exactly as a run for one domain does: re-read the
   definition, patch it, back it up, create missing source directories, define it (re-read
   right before, up to :data:`DEFINE_ATTEMPTS` times when another writer got in between),
   read it back and verify, then compare the running domain and attach/detach live when
   asked. A libvirt failure on one domain is recorded for that domain (its created source
   directories are removed again unless its new definition is in place) and the run goes on
   with the next; domains already converged stay converged. When the failure is a lost libvirt
   connection, the domain's error says how far it got (:func:`connection_lost`). Domains whose
   definition needs no change are not defined and take no lock.
"""

from __future__ import annotations

import datetime
import grp
import os
import pwd
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    MANAGED_KEYS,
    DomainXML,
    DomainXMLError,
    ShareSpec,
    apply_shares,
    check_domain_type,
    element_to_string,
    faithful_bytes,
    read_xml_file,
    share_to_dict,
    validate_specs,
    verify_converged,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import BackupError, remove_leftovers, write_atomic
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import LibvirtAdapterError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import DomainLockError, LockTimeout, path_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import (
    LibvirtFeatureError,
    check_features,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import problem as path_problem
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import proc_source_error
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import source_findings
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import SOURCE_OPTIONS, SPEC_OPTIONS
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version

DEFINE_ATTEMPTS = 5
DEFAULT_BACKUP_DIR = "/var/lib/virtiofs-libvirt/backups"
_MODE_RE = re.compile(r"0?[0-7]{3,4}|[ugoa]*[-+=][rwxXstugo]*(?:,[ugoa]*[-+=][rwxXstugo]*)*")


class ShareError(Exception):
    """A problem found by the engine itself (host checks, verification after a define)."""


class ShareValidationError(ShareError):
    """Problems found before anything was touched: ``problems`` is a list of (domain, message)."""

    def __init__(
        self,
        problems: t.Sequence[t.Tuple[t.Optional[str], str]],
        name_domains: bool,
        libvirt_version: t.Optional[str] = None,
    ) -> None:
        self.problems = list(problems)
        self.libvirt_version = libvirt_version  # known when the problems were found after connecting
        if name_domains:
            text = "; ".join(f"domain {d!r}: {m}" if d is not None else m for d, m in self.problems)
            text += ". Nothing was changed."
        else:
            text = "; ".join(m for _d, m in self.problems)
        super().__init__(text)


# Errors a domain's convergence can end with (recorded per domain in a multi-domain run).
DOMAIN_ERRORS: t.Tuple[t.Type[BaseException], ...] = (
    ShareError, DomainXMLError, LibvirtFeatureError, LibvirtAdapterError, DomainLockError, OSError,
)


# ------------------------------------------------------------------------------------ the input

@dataclass
class Settings:
    """Options that apply to every domain of a run."""

    uri: str = "qemu:///system"
    exclusive: bool = False
    memory_backing: str = "auto"
    live: str = "false"
    backup: bool = False
    backup_dir: str = DEFAULT_BACKUP_DIR
    pending_binaries: t.Sequence[str] = ()
    changed_binaries: t.Sequence[str] = ()
    check_mode: bool = False
    diff: bool = False
    lock_timeout: float = 120.0
    # defaults for the per-entry create_source/owner/group/mode
    create_source: bool = False
    owner: t.Optional[str] = None
    group: t.Optional[str] = None
    mode: t.Any = None


@dataclass
class DomainRequest:
    """The shares wanted for one domain (``name`` is a name or UUID), as module-style entries."""

    name: str
    shares: t.Sequence[t.Mapping[str, t.Any]]


@dataclass
class Host:
    """What the engine needs from its caller (the module fills it from its AnsibleModule).

    * ``connect(uri)``: a context manager giving a :class:`_libvirt.Connection`-like object
      (``version()``, ``lookup(name)`` returning a domain with ``name``, ``uuid``,
      ``is_persistent()``, ``is_active()``, ``inactive_xml()``, ``live_xml()``,
      ``define(xml, current_xml)``, ``attach_live(xml)``, ``detach_live(xml)``);
    * ``lock(uri, uuid, timeout)``: a context manager serialising writers of one domain
      (:func:`_lock.domain_lock`), raising when another run holds it longer than ``timeout``;
    * ``set_attributes(path, owner, group, mode)``: owner/group/mode of a created directory
      (``module.set_fs_attributes_if_different``);
    * ``move(src, dest)``: ``module.atomic_move`` (:func:`os.replace` when not given);
    * ``backup_file(path)``: a timestamped copy next to a file (``_files.backup_file``: never follows a name
      planted in a directory others can write);
    * ``stale_daemons(dom, shares)``: why running virtiofsd of the live ``shares`` are older than
      their program (:func:`_restart.domain_reasons`); not asked when not given.
    """

    connect: t.Callable[[str], t.Any]
    lock: t.Callable[[str, str, float], t.Any]
    set_attributes: t.Callable[[str, t.Optional[str], t.Optional[str], t.Any], t.Any]
    backup_file: t.Callable[[str], str]
    move: t.Optional[t.Callable[[str, str], t.Any]] = None
    now: t.Callable[[], datetime.datetime] = datetime.datetime.now
    stale_daemons: t.Optional[t.Callable[[t.Any, t.List[t.Dict[str, t.Any]]], t.List[str]]] = None


def new_result() -> t.Dict[str, t.Any]:
    return dict(
        changed=False,
        actions=[],
        restart_required=False,
        restart_reasons=[],
        shares=[],
        memory_backing={},
        libvirt_version=None,
        domain={},
        defined_with_validation=None,
    )


def parse_entries(
    entries: t.Sequence[t.Mapping[str, t.Any]], settings: Settings
) -> t.Tuple[t.List[ShareSpec], t.Dict[str, t.Dict[str, t.Any]]]:
    """The specs of module-style share entries, and per tag how a missing source is created."""
    specs = [ShareSpec.from_params(item) for item in entries]
    validate_specs(specs)
    sources: t.Dict[str, t.Dict[str, t.Any]] = {}
    for spec, item in zip(specs, entries):
        sources[spec.tag] = {
            key: (item.get(key) if item.get(key) is not None else getattr(settings, key)) for key in SOURCE_OPTIONS
        }
    return specs, sources


def check_ownership(tag: str, params: t.Mapping[str, t.Any]) -> None:
    """Refuse an unknown owner/group or a malformed mode before anything is created."""
    for key, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
        value = params.get(key)
        if value is None or str(value).isdigit():
            continue
        try:
            lookup(str(value))
        except KeyError:
            raise ShareError(
                f"share {tag!r}: {key} {value!r} of the source directory to create does not exist on this host: "
                f"create the {'user' if key == 'owner' else 'group'} first or choose another"
            ) from None
    problem = mode_error(tag, params.get("mode"))
    if problem:
        raise ShareError(problem)


def mode_error(tag: str, mode: t.Any, what: str = "of the source directory to create",
               prefix: t.Optional[str] = None) -> t.Optional[str]:
    """Why ``mode`` cannot be the mode of a source directory to create, or ``None`` (no host
    needed: the host role's plan runs it before anything changes). ``what`` and ``prefix`` (default
    ``share 'TAG': mode``) name the directory and the key for other callers (the guest's mount point)."""
    if prefix is not None:
        message = mode_error(tag, mode, what)
        return None if message is None else prefix + message[len(f"share {tag!r}: mode"):]
    if mode is None:
        return None
    if isinstance(mode, bool) or (not isinstance(mode, int) and not _MODE_RE.fullmatch(str(mode))):
        return (
            f"share {tag!r}: mode {mode!r} {what} is neither octal (e.g. '0755') "
            "nor symbolic (e.g. 'u=rwx,g=rx,o=')"
        )
    if isinstance(mode, int):
        # like ansible.builtin.file an int is the mode's number: YAML 0755 is 493, but an unquoted 755 is
        # the decimal number 755 (0o1363); three octal digits above 0o777 can only be that mistake
        if mode < 0 or mode > 0o7777:
            return (
                f"share {tag!r}: mode {mode!r} {what} is outside 0 to 0o7777: "
                "give the mode as a quoted octal string (e.g. '0755')"
            )
        if 0o777 < mode <= 777 and set(str(mode)) <= set("01234567"):
            return (
                f"share {tag!r}: mode {mode!r} {what} is the decimal number {mode} "
                f"(octal {mode:04o}), not the octal mode {mode:04d}: quote it, mode: '0{mode}'"
            )
        value: t.Optional[int] = mode
    else:
        value = int(str(mode), 8) if str(mode).isdigit() else None  # symbolic modes are applied as given
    if value is not None and value & 0o4000:
        return (
            f"share {tag!r}: mode {mode!r} {what} sets the setuid bit (0o4000), which "
            "means nothing on a directory: drop it (setgid 0o2000 and sticky 0o1000 are fine)"
        )
    return None


def check_creatable(tag: str, path: str) -> None:
    """Refuse a missing source directory that cannot be created because a component of the part
    of its path that exists is not a directory (``/etc/hostname/sub``), or because the source
    itself is a dangling symbolic link. Checked whether or not ``create_source`` is set:
    "create it first" cannot work there either."""
    parts = [part for part in path.split("/") if part]
    current = "/"
    for index, part in enumerate(parts):  # the last one too: a dangling link (os.makedirs cannot create it)
        current = os.path.join(current, part)
        if not os.path.lexists(current):
            return  # the rest is created
        if index == len(parts) - 1:
            if not os.path.islink(current) or os.path.exists(current):
                return  # not a dangling link: check_host names what it is
            raise ShareError(
                f"share {tag!r}: source {path!r} is a symbolic link that does not lead to a directory: point it at "
                "a directory, or remove it (create_source=true then creates the directory)"
            )
        if not os.path.isdir(current):
            if os.path.islink(current):
                what = "a symbolic link that does not lead to a directory"
            elif os.path.isfile(current):
                what = "a regular file, not a directory"
            else:
                what = "not a directory"
            raise ShareError(
                f"share {tag!r}: source {path!r} does not exist and cannot be created: {current!r} is {what}; "
                f"choose a source below a directory, or replace {current!r} with a directory"
            )


def check_host(
    specs: t.Sequence[ShareSpec],
    sources: t.Mapping[str, t.Mapping[str, t.Any]],
    pending: t.Collection[str] = (),
    warnings: t.Optional[t.List[str]] = None,
) -> t.List[t.Tuple[str, t.Dict[str, t.Any]]]:
    """Check binaries and sources on this host; return the sources that must be created.

    ``pending`` (check mode only): binaries an earlier task of the same run installs.
    ``warnings``: the source warnings of :func:`_path_safety.source_findings` are appended
    (a symbolic link on the way, a parent directory other users can change); its refusals
    (``/``, ``/proc``, a link other users can change) are raised. The first problem of every
    share is collected and all are raised together (joined by ``; ``). Check mode runs the
    same checks.
    """
    missing: t.List[t.Tuple[str, t.Dict[str, t.Any]]] = []
    errors: t.List[str] = []
    for spec in specs:
        try:
            _check_one_host(spec, sources, pending, missing, warnings)
        except ShareError as exc:  # every share's problem at once, as the other input checks
            errors.append(str(exc))
    if errors:
        raise ShareError("; ".join(errors))
    return missing


def _check_one_host(spec: ShareSpec, sources: t.Mapping[str, t.Mapping[str, t.Any]], pending: t.Collection[str],
                    missing: t.List[t.Tuple[str, t.Dict[str, t.Any]]], warnings: t.Optional[t.List[str]]) -> None:
    """:func:`check_host` for one share: raises its first problem, appends to ``missing``."""
    if spec.state != "present":
        return
    if spec.source is not None:
        proc = proc_source_error(spec.source, f"share {spec.tag!r}: source")
        if proc is not None:  # before "does not exist": nothing can be created in /proc
            raise ShareError(proc)
    if spec.binary_path is not None:
        path = spec.binary_path
        if not os.path.exists(path) and os.path.normpath(path) in pending:
            pass  # an earlier task of this run installs it (check mode prediction)
        elif not (os.path.isfile(path) and os.access(path, os.X_OK)):
            what = "does not exist" if not os.path.exists(path) else "is not an executable file"
            raise ShareError(
                f"share {spec.tag!r}: binary_path {path!r} {what} on this host: install virtiofsd "
                "(or the wrapper) there, or fix the path"
            )
        untrusted = path_problem(path, f"share {spec.tag!r}: binary_path")  # libvirt runs it as root
        if untrusted is not None:
            raise ShareError(str(untrusted))
    if spec.source is not None and not os.path.isdir(spec.source):
        if os.path.exists(spec.source):
            raise ShareError(
                f"share {spec.tag!r}: source {spec.source!r} exists but is not a directory: "
                "virtio-fs shares a directory"
            )
        params = dict(sources[spec.tag])
        check_creatable(spec.tag, spec.source)  # before "create it": below a file nothing can be created
        if not params["create_source"]:
            raise ShareError(
                f"share {spec.tag!r}: source directory {spec.source!r} does not exist on this host: "
                "create it first or set create_source=true"
            )
        check_ownership(spec.tag, params)
        if spec.source not in [path for path, _params in missing]:
            missing.append((spec.source, params))
    if spec.source is not None:
        refusal, found = source_findings(spec.source, f"share {spec.tag!r}: source")
        if refusal is not None:
            raise ShareError(refusal)
        if warnings is not None:
            warnings.extend(w for w in found if w not in warnings)


# ----------------------------------------------------------------------------- shared helpers

class SourceDirs:
    """Creates missing source directories, once per run, and removes them again on failure."""

    def __init__(self, host: Host, check_mode: bool) -> None:
        self.host = host
        self.check_mode = check_mode
        self.done: t.Set[str] = set()  # created (or, in check mode, reported) by this run

    def create(self, missing: t.Sequence[t.Tuple[str, t.Mapping[str, t.Any]]], run: "_Run") -> None:
        for path, params in missing:
            if path in self.done:
                continue  # another domain of this run created it
            self.done.add(path)
            run.extra_actions.append(f"create source directory {path}")
            run.result["changed"] = True
            if self.check_mode:
                continue
            # remember the outermost directory that did not exist, to remove it if the run fails
            top = path
            while not os.path.exists(os.path.dirname(top)):
                top = os.path.dirname(top)
            os.makedirs(path, exist_ok=True)
            run.created_dirs.append(top)
            self.host.set_attributes(path, params.get("owner"), params.get("group"), params.get("mode"))

    def remove(self, run: "_Run") -> None:
        """Undo :meth:`create` for ``run`` (only directories that are still empty)."""
        for top in reversed(run.created_dirs):
            for root, _dirs, _files in os.walk(top, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        run.created_dirs = []


def write_backup(directory: str, domain_name: str, xml: str, now: t.Callable[[], datetime.datetime]) -> str:
    """Save a domain definition as ``<directory>/<name>-<timestamp>.xml`` (0600, whole or not at all)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stamp = now().strftime("%Y%m%dT%H%M%S.%f")
    path = os.path.join(directory, f"{domain_name}-{stamp}.xml")
    n = 1
    while os.path.exists(path):
        path = os.path.join(directory, f"{domain_name}-{stamp}-{n}.xml")
        n += 1
    write_atomic(path, xml, mode=0o600)
    return path


class _Run:
    """The state of one domain (or file) in a run; ``result`` is what the module returns for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.result = new_result()
        self.warnings: t.List[str] = []
        self.host_warnings: t.List[str] = []  # of the host checks (check_host), kept across re-patches
        self.patch_actions: t.List[str] = []
        self.extra_actions: t.List[str] = []
        self.created_dirs: t.List[str] = []
        self.written = False
        self.step = "start"  # how far convergence got: start, define, verify, live (see connection_lost)
        # from the validation phase
        self.specs: t.List[ShareSpec] = []
        self.missing: t.List[t.Tuple[str, t.Dict[str, t.Any]]] = []
        self.dom: t.Any = None
        self.read_xml: t.Optional[str] = None
        self.before: t.Optional[DomainXML] = None
        self.after: t.Optional[DomainXML] = None
        self.patch: t.Any = None

    def record_patch(
        self, before: DomainXML, after: DomainXML, patch: t.Any, diff: bool,
        texts: t.Optional[t.Tuple[str, str]] = None, header: t.Optional[str] = None,
    ) -> None:
        """``texts``: the diff's before and after as they are on disk (an ``xml_file``); the
        re-serialised trees otherwise (a domain definition is libvirt's text, not bytes).
        ``header``: the diff's before and after header (an ``xml_file``'s path); the domain's
        name and "(inactive definition)" otherwise."""
        self.patch_actions = list(patch.actions)
        self.result["memory_backing"] = patch.memory_backing
        self.result["domain"] = {"name": after.name, "uuid": after.uuid}
        self.warnings = list(patch.warnings)
        if patch.changed:
            self.result["changed"] = True
        if diff:
            if header is None:
                header = f"{after.name or 'domain'} (inactive definition)"
            before_text, after_text = texts if texts is not None else (before.to_string(), after.to_string())
            self.result["diff"] = {
                "before": before_text,
                "after": after_text,
                "before_header": header,
                "after_header": header,
            }

    def finish(self) -> t.Dict[str, t.Any]:
        self.result["actions"] = self.patch_actions + self.extra_actions
        warnings = self.host_warnings + [w for w in self.warnings if w not in self.host_warnings]
        if warnings:
            self.result["warnings"] = warnings
        return self.result

    def partial(self) -> t.Dict[str, t.Any]:
        """What a failed run still reports (the new definition may be in place)."""
        out = {k: v for k, v in self.result.items() if k in ("libvirt_version", "domain", "backup_file")}
        out["changed"] = self.written
        out["actions"] = self.patch_actions + self.extra_actions if self.written else list(self.extra_actions)
        return out


# ------------------------------------------------------------------------------------ a file

def _file_text(data: bytes) -> str:
    """The bytes of a file as diff text: UTF-8 when they are (a BOM and CRLF stay visible),
    otherwise Latin-1 (one character per byte: every byte shows)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def check_settings(settings: Settings) -> None:
    """Refuse run-wide options no run can use (before anything is read or changed)."""
    timeout = settings.lock_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ShareError(
            f"lock_timeout must be a number of seconds >= 0 (0: fail at once when another run holds the lock), "
            f"got {timeout!r}; there is no 'wait forever': give a large number instead"
        )


def converge_file(path: str, entries: t.Sequence[t.Mapping[str, t.Any]], settings: Settings, host: Host) -> t.Dict[str, t.Any]:
    """Patch a domain XML file in place (replaced atomically; a symlink's target is replaced)."""
    check_settings(settings)
    path = os.path.realpath(path)
    if settings.live != "false":
        raise ShareError("live cannot be used with xml_file: there is no running domain for a file")
    specs, sources = parse_entries(entries, settings)
    run = _Run(path)
    missing = check_host(
        specs, sources, settings.pending_binaries if settings.check_mode else (), warnings=run.host_warnings
    )
    dirs = SourceDirs(host, settings.check_mode)
    try:
        # read-patch-write under the file's lock: concurrent runs on one file lose nothing
        with path_lock(path, settings.lock_timeout):
            if not settings.check_mode:
                remove_leftovers(path)  # temporary files of runs killed mid-write
            on_disk = read_xml_file(path)
            before = DomainXML.from_string(on_disk, what=f"xml_file {path!r}")
            check_domain_type(before, specs, what=f"xml_file {path!r}")
            after = before.copy()
            patch = apply_shares(after, specs, exclusive=settings.exclusive, memory_backing=settings.memory_backing)
            data = faithful_bytes(before, after, what=f"xml_file {path!r}") if patch.changed else on_disk
            run.record_patch(
                before, after, patch, settings.diff, texts=(_file_text(on_disk), _file_text(data)), header=path
            )
            dirs.create(missing, run)
            run.result["shares"] = after.shares()
            if patch.changed and not settings.check_mode:
                if settings.backup:
                    try:
                        run.result["backup_file"] = host.backup_file(path)
                    except BackupError as exc:
                        raise ShareError(f"{exc.message}; {path} was not changed") from None
                write_atomic(path, data, move=host.move)
                run.written = True
    except LockTimeout as exc:
        raise ShareError(f"{exc}; {path} was not changed") from None
    except BaseException:  # also SystemExit: fail_json from set_attributes
        if not run.written:
            dirs.remove(run)
        raise
    return run.finish()


# ------------------------------------------------------------------------------------ domains

class DomainsOutcome:
    """The result of :func:`converge_domains`: per requested domain its result, or its error."""

    def __init__(self) -> None:
        self.runs: t.Dict[str, _Run] = {}
        self.errors: t.Dict[str, str] = {}
        self.exceptions: t.Dict[str, BaseException] = {}
        self.libvirt_version: t.Optional[str] = None

    @property
    def changed(self) -> bool:
        return any(
            run.written or (run.result["changed"] and name not in self.errors) for name, run in self.runs.items()
        )

    def results(self) -> t.Dict[str, t.Dict[str, t.Any]]:
        out: t.Dict[str, t.Dict[str, t.Any]] = {}
        for name, run in self.runs.items():
            if name in self.errors:
                res = run.partial()
                res.update(failed=True, msg=self.errors[name])
            else:
                res = run.finish()
                res["failed"] = False
            out[name] = res
        return out


def converge_domains(
    requests: t.Sequence[DomainRequest], settings: Settings, host: Host, name_domains: bool = True
) -> DomainsOutcome:
    """Converge the shares of every domain of ``requests`` over one connection.

    Raises :class:`ShareValidationError` (nothing changed) when any input is bad, a
    connection error when libvirt cannot be reached; failures of single domains after that are
    in the outcome's ``errors``. ``name_domains=False`` keeps the messages of a one-domain run
    free of the domain prefix.
    """
    check_settings(settings)
    outcome = DomainsOutcome()
    problems: t.List[t.Tuple[t.Optional[str], str]] = []
    pending = {os.path.normpath(p) for p in settings.pending_binaries} if settings.check_mode else set()
    seen_names: t.Set[str] = set()
    runs: t.List[_Run] = []
    for request in requests:
        if request.name in seen_names:
            problems.append((request.name, "the domain is listed twice: put all of its shares into one entry"))
            continue
        seen_names.add(request.name)
        run = _Run(request.name)
        runs.append(run)
        try:
            run.specs, sources = parse_entries(request.shares, settings)
            run.missing = check_host(run.specs, sources, pending, warnings=run.host_warnings)
        except (DomainXMLError, ShareError) as exc:
            problems.append((request.name, str(exc)))
    if problems:
        raise ShareValidationError(problems, name_domains)

    with host.connect(settings.uri) as conn:
        version = conn.version()
        outcome.libvirt_version = format_version(version)
        by_uuid: t.Dict[str, str] = {}
        for run in runs:
            run.result["libvirt_version"] = outcome.libvirt_version
            try:
                _plan(run, conn, version, settings)
            except (ShareError, DomainXMLError, LibvirtFeatureError, LibvirtAdapterError) as exc:
                problems.append((run.name, str(exc)))  # unknown domain, transient, too new, conflicts
                continue
            other = by_uuid.setdefault(run.dom.uuid, run.name)
            if other != run.name:
                problems.append((run.name, f"this is the same domain as {other!r}: put all of its shares into one entry"))
        if problems:
            raise ShareValidationError(problems, name_domains, outcome.libvirt_version)

        dirs = SourceDirs(host, settings.check_mode)
        for run in runs:
            outcome.runs[run.name] = run
            try:
                _converge(run, conn, version, settings, host, dirs)
            except BaseException as exc:  # also SystemExit: fail_json from set_attributes
                if not run.written:  # a definition that is in place keeps its source directories
                    dirs.remove(run)
                if isinstance(exc, DOMAIN_ERRORS):
                    lost = isinstance(exc, LibvirtAdapterError) and not _alive(conn)
                    outcome.errors[run.name] = connection_lost(run, exc) if lost else str(exc)
                    outcome.exceptions[run.name] = exc
                    continue
                raise
    return outcome


def _alive(conn: t.Any) -> bool:
    is_alive = getattr(conn, "is_alive", None)
    return True if is_alive is None else bool(is_alive())


def connection_lost(run: _Run, exc: BaseException) -> str:
    """The error of a domain whose convergence ended because the libvirt connection broke:
    what was and was not done for it."""
    if run.step == "start":
        done = "nothing was defined for it"
    elif run.step == "define":
        done = (
            "its new definition was being defined when the connection broke, so whether it is in place is "
            "unknown (virsh dumpxml --inactive tells)"
        )
    elif run.step == "verify":
        done = "its new definition was defined but is unverified (it was not read back)"
    elif run.written:
        done = (
            "its new definition is in place and verified; the running domain was not compared with it "
            "(live attach/detach and restart_required are unknown)"
        )
    else:
        done = (
            "its definition needed no change (nothing was defined); the running domain was not compared with it "
            "(live attach/detach and restart_required are unknown)"
        )
    return f"libvirt connection lost ({exc}): {done}. Run again once libvirtd is reachable"


def _plan(run: _Run, conn: t.Any, version: t.Tuple[int, int, int], settings: Settings) -> None:
    """Validation phase for one domain: look it up and patch its definition in memory."""
    dom = conn.lookup(run.name)
    run.dom = dom
    if not dom.is_persistent():
        raise ShareError(
            f"domain {dom.name!r} is transient (it has no persistent definition): defining it would make it "
            "persistent; define the domain first (virsh define) or patch its XML with xml_file before creating it"
        )
    for spec in run.specs:
        check_features(spec.features(), version, context=f"share {spec.tag!r}")
    _patch(run, dom, dom.inactive_xml(), version, settings)


def _patch(run: _Run, dom: t.Any, xml: str, version: t.Tuple[int, int, int], settings: Settings) -> None:
    before = DomainXML.from_string(xml, what=f"definition of domain {dom.name!r}")
    check_domain_type(before, run.specs, what=f"domain {dom.name!r}")
    after = before.copy()
    patch = apply_shares(after, run.specs, exclusive=settings.exclusive, memory_backing=settings.memory_backing)
    check_features(patch.features, version, context=f"domain {dom.name!r}")
    if patch.changed:
        faithful_bytes(before, after, what=f"definition of domain {dom.name!r}")
    run.read_xml, run.before, run.after, run.patch = xml, before, after, patch
    run.result["changed"] = False
    run.record_patch(before, after, patch, settings.diff)


def _converge(
    run: _Run, conn: t.Any, version: t.Tuple[int, int, int], settings: Settings, host: Host, dirs: SourceDirs
) -> None:
    dom = run.dom
    if not run.patch.changed or settings.check_mode:
        # nothing to define (or check mode): the validation phase's read is the answer
        dirs.create(run.missing, run)
        stored = run.after
    else:
        with host.lock(conn.uri, dom.uuid, settings.lock_timeout):
            stored = _define(run, dom, version, settings, host, dirs)
    run.result["shares"] = stored.shares()
    run.before = run.after = None  # the trees are not needed any more
    run.step = "live"
    if dom.is_active():
        _converge_live(run, dom, stored, settings, host.stale_daemons)


def _define(
    run: _Run, dom: t.Any, version: t.Tuple[int, int, int], settings: Settings, host: Host, dirs: SourceDirs
) -> DomainXML:
    for attempt in range(DEFINE_ATTEMPTS):
        current_xml = dom.inactive_xml()
        if attempt > 0 or current_xml != run.read_xml:
            _patch(run, dom, current_xml, version, settings)  # another writer changed it since
        if not run.patch.changed:
            dirs.create(run.missing, run)
            return run.after
        # re-read right before defining: another writer may have changed the definition
        if dom.inactive_xml() != current_xml:
            continue
        if settings.backup and "backup_file" not in run.result:
            run.result["backup_file"] = write_backup(settings.backup_dir, dom.name, current_xml, host.now)
        dirs.create(run.missing, run)
        run.missing = []
        run.step = "define"
        run.result["defined_with_validation"] = dom.define(run.after.to_string(), current_xml)
        run.written = True
        run.step = "verify"
        stored = DomainXML.from_string(dom.inactive_xml(), what=f"definition of domain {dom.name!r}")
        problems = verify_converged(
            run.after, stored, run.specs, exclusive=settings.exclusive, memory_backing=settings.memory_backing
        )
        if problems:
            raise ShareError(
                f"libvirt {format_version(version)} did not store the shares as defined for domain "
                f"{dom.name!r}: " + "; ".join(problems)
                + ". The new definition is in place; check the options against this libvirt version."
            )
        return stored
    raise ShareError(
        f"the definition of domain {dom.name!r} kept changing while this run tried to patch it "
        f"({DEFINE_ATTEMPTS} attempts); nothing was defined, run again"
    )


def _converge_live(
    run: _Run, dom: t.Any, stored: DomainXML, settings: Settings, stale_daemons: t.Optional[t.Callable[..., t.List[str]]] = None
) -> None:
    """Compare the running configuration with the definition; attach/detach when asked."""
    act = settings.live in ("true", "auto")
    live = DomainXML.from_string(dom.live_xml(), what=f"live XML of domain {dom.name!r}")
    reasons: t.List[str] = []
    live_shared = live.memory_status()["shared"]
    tags = [s.tag for s in run.specs]
    if settings.exclusive:
        tags += [fs_tag for fs_tag in (d["tag"] for d in live.shares()) if fs_tag not in tags]
    wanted_present = any(stored.find_share(tag) is not None for tag in tags)
    if wanted_present and stored.memory_status()["shared"] and not live_shared:
        reasons.append("the running domain has no shared memory yet: memoryBacking changes need a full stop and start")
    for tag in tags:
        want = stored.find_share(tag)
        have = live.find_share(tag)
        if want is not None and have is None:
            if not act:
                reasons.append(f"share {tag!r} is not attached to the running domain (live=false)")
            elif not live_shared:
                reasons.append(f"share {tag!r} cannot be attached: the running domain has no shared memory")
            else:
                _live_step(run, dom, "attach", tag, element_to_string(want, strip=("address",)), reasons, settings)
        elif want is None and have is not None:
            if not act:
                reasons.append(f"share {tag!r} is still attached to the running domain (live=false)")
            else:
                _live_step(run, dom, "detach", tag, element_to_string(have), reasons, settings)
        elif want is not None and have is not None:
            w = share_to_dict(want)
            h = share_to_dict(have)
            diff = [k for k in MANAGED_KEYS if k != "lock" and w.get(k) != h.get(k)]
            if diff:
                reasons.append(
                    f"share {tag!r} runs with other options ({', '.join(diff)}): libvirt cannot change a "
                    "virtio-fs device of a running domain"
                )
    changed_binaries = set(settings.changed_binaries)
    unreported = []
    for have_share in live.shares():
        want = stored.find_share(have_share["tag"])
        if have_share["binary_path"] in changed_binaries and want is not None:
            reasons.append(
                f"share {have_share['tag']!r} runs {have_share['binary_path']}, which changed in this run: its "
                "virtiofsd keeps the old program and options until the domain is shut down and started"
            )
        elif want is not None:
            unreported.append(have_share)
    if stale_daemons is not None and unreported:
        # a change of an earlier run (or made by hand) is read from the host in every run
        reasons += stale_daemons(dom, unreported)
    if act and not settings.check_mode and any(a.startswith("detach") for a in run.extra_actions):
        # confirm with libvirt's view of the running domain
        live = DomainXML.from_string(dom.live_xml(), what=f"live XML of domain {dom.name!r}")
        for tag in tags:
            if stored.find_share(tag) is None and live.find_share(tag) is not None:
                reasons.append(
                    f"share {tag!r}: detach was requested but the guest has not released the device yet "
                    "(unmount the tag in the guest)"
                )
    run.result["restart_reasons"] = reasons
    run.result["restart_required"] = bool(reasons)
    if reasons and settings.live == "true":
        run.warnings.append("the running domain could not be changed completely: " + "; ".join(reasons))


def _live_step(run: _Run, dom: t.Any, op: str, tag: str, xml: str, reasons: t.List[str], settings: Settings) -> None:
    verb = "attach share {!r} to" if op == "attach" else "detach share {!r} from"
    action = verb.format(tag) + " the running domain"
    if settings.check_mode:
        run.extra_actions.append(action)
        run.result["changed"] = True
        return
    try:
        (dom.attach_live if op == "attach" else dom.detach_live)(xml)
    except LibvirtAdapterError as exc:  # libvirt refused the hotplug
        reasons.append(f"share {tag!r} cannot be {op}ed live: {exc}")
        return
    run.extra_actions.append(action)
    run.result["changed"] = True


# ------------------------------------------------------------------------------ the share module

def single_share(p: t.Mapping[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    """The share entries of a run: ``shares``, or the single share of the top-level options."""
    if p["shares"] is None and p["domains"] is None:
        return [{k: p[k] for k in ("tag", "state") + SPEC_OPTIONS}]
    given = [k for k in SPEC_OPTIONS if p[k] is not None] + (["state"] if p["state"] != "present" else [])
    if given:
        where = "shares" if p["shares"] is not None else "domains"
        into = "the entries of shares" if where == "shares" else "the shares of the entries of domains"
        raise ShareError(
            f"the single-share options {', '.join(given)} cannot be combined with {where}: put them into {into}"
        )
    return list(p["shares"] or [])


def settings_from_params(p: t.Mapping[str, t.Any], check_mode: bool, diff: bool) -> Settings:
    """The :class:`Settings` of a ``share`` run from the module's options."""
    return Settings(
        uri=p["uri"], exclusive=p["exclusive"], memory_backing=p["memory_backing"], live=p["live"],
        backup=p["backup"], backup_dir=p["backup_dir"], pending_binaries=p["pending_binaries"],
        changed_binaries=p["changed_binaries"], check_mode=check_mode, diff=diff,
        lock_timeout=p["lock_timeout"],
        create_source=p["create_source"], owner=p["owner"], group=p["group"], mode=p["mode"],
    )


def run_share(
    p: t.Mapping[str, t.Any], check_mode: bool, diff: bool, host: Host, need_libvirt: t.Callable[[], None]
) -> t.Tuple[t.Dict[str, t.Any], t.List[str], bool]:
    """The whole ``share`` run: ``(result, warnings, failed)``.

    ``need_libvirt()`` raises when libvirt-python is missing (not needed for ``xml_file``).
    With ``domains`` a failed domain does not stop the others: ``failed`` is then true and
    ``result["msg"]`` names every failed domain and says how many converged.
    """
    settings = settings_from_params(p, check_mode, diff)
    entries = single_share(p)
    if p["xml_file"] is not None:
        result = converge_file(p["xml_file"], entries, settings, host)
        return result, result.pop("warnings", []), False
    need_libvirt()
    if p["domains"] is None:
        outcome = converge_domains([DomainRequest(p["domain"], entries)], settings, host, name_domains=False)
    else:
        outcome = converge_domains([DomainRequest(d["name"], d["shares"]) for d in p["domains"]], settings, host)

    results = outcome.results()
    multi = p["domains"] is not None
    warnings: t.List[str] = []
    for name, res in results.items():
        for warning in res.pop("warnings", []):
            warnings.append(f"domain {name!r}: {warning}" if multi else warning)
    if not multi:
        res = next(iter(results.values()))
        failed = res.pop("failed")
        return res, warnings, failed
    ret: t.Dict[str, t.Any] = dict(
        changed=outcome.changed,
        domains=results,
        libvirt_version=outcome.libvirt_version,
        restart_required=any(res.get("restart_required") for res in results.values()),
    )
    if diff:
        ret["diff"] = [res["diff"] for res in results.values() if "diff" in res]
    if outcome.errors:
        failed_names = ", ".join(repr(n) for n in outcome.errors)
        converged = [repr(n) for n in results if n not in outcome.errors]
        ok = f"the other {len(converged)} converged ({', '.join(converged)})" if converged else "none converged"
        ret["msg"] = (
            f"{len(outcome.errors)} of {len(results)} domains failed ({failed_names}); {ok}: "
            + "; ".join(f"domain {n!r}: {m}" for n, m in outcome.errors.items())
        )
        return ret, warnings, True
    return ret, warnings, False
