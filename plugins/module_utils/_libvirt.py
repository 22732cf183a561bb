# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The only code in the collection that imports ``libvirt`` (libvirt-python).

Private module_utils: other collections must not import it.

No Ansible imports. Wraps the few libvirt calls the modules need (open a connection, look a
domain up by name or UUID, read the inactive/live XML, define, attach/detach live) and turns
``libvirtError`` into :class:`LibvirtAdapterError` with a message that names the fix. Also
holds the host facts around libvirt that are not XML: virtiofsd processes of running domains
(pid files under ``/run/libvirt/qemu`` and ``/proc``), their log files, the vhost-user
descriptors libvirt picks a daemon from, and a per-domain lock for concurrent runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import traceback
import typing as t
from urllib.parse import urlparse

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import looks_like_uuid
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import LockTimeout, exclusive_lock, read_bytes
from ansible_collections.virtiofs.libvirt.plugins.module_utils._vhost_user import SYSTEM_DIRS, lookup
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import libvirt_int_to_version

try:
    import libvirt

    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR: t.Optional[str] = None
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    libvirt = None  # type: ignore[assignment]
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()


DEFAULT_SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
SYSTEM_STATE_DIR = "/run/libvirt/qemu"
SYSTEM_LOG_DIR = "/var/log/libvirt/qemu"
SHORT_NAME_MAX = 20  # VIR_DOMAIN_SHORT_NAME_MAX


class LibvirtAdapterError(Exception):
    """A libvirt operation failed; the message says what and how to fix it."""


def _message(exc: t.Any) -> str:
    try:
        text = exc.get_error_message()
    except AttributeError:
        text = None
    return text or str(exc)


def _quiet(_ctx: t.Any, _err: t.Any) -> None:
    """libvirt prints every error on stderr unless a handler is registered."""


def uri_is_local(uri: str) -> bool:
    """True for URIs without a host part (``qemu:///system``, ``test:///default``)."""
    parsed = urlparse(uri)
    return not parsed.netloc and "+" not in parsed.scheme


class Domain:
    """A domain handle plus the connection it came from."""

    def __init__(self, connection: "Connection", dom: t.Any) -> None:
        self.connection = connection
        self.dom = dom

    @property
    def name(self) -> str:
        return self.dom.name()

    @property
    def uuid(self) -> str:
        return self.dom.UUIDString()

    @property
    def id(self) -> int:
        return self.dom.ID()

    def is_active(self) -> bool:
        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot read the state of domain {self.name!r}: {_message(exc)}") from None

    def is_persistent(self) -> bool:
        try:
            return bool(self.dom.isPersistent())
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot read domain {self.name!r}: {_message(exc)}") from None

    def inactive_xml(self) -> str:
        """The persistent definition (``virsh dumpxml --inactive``)."""
        try:
            return self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot read the definition of domain {self.name!r}: {_message(exc)}") from None

    def live_xml(self) -> str:
        try:
            return self.dom.XMLDesc(0)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot read the live XML of domain {self.name!r}: {_message(exc)}") from None

    def define(self, xml: str, current_xml: str, schema: t.Optional[str] = None) -> bool:
        """Define ``xml``; return True when libvirt validated it against its schema.

        Uses ``VIR_DOMAIN_DEFINE_VALIDATE`` when the current definition (``current_xml``)
        passes libvirt's schema: then the new one must pass too. Many real definitions do
        not validate (libvirt accepts them anyway); for those the new definition is defined
        plainly and the caller relies on re-reading and verifying it. When the schema is not
        available locally (remote URI), validation is tried and a schema failure falls back
        to a plain define.
        """
        current_validates = self.connection.schema_validates(current_xml, schema)
        flags = 0 if current_validates is False else libvirt.VIR_DOMAIN_DEFINE_VALIDATE
        try:
            self.connection.conn.defineXMLFlags(xml, flags)
            return bool(flags)
        except libvirt.libvirtError as exc:
            schema_error = exc.get_error_code() == libvirt.VIR_ERR_XML_INVALID_SCHEMA
            if not (flags and schema_error and current_validates is None):
                how = "with schema validation" if flags else "without schema validation"
                raise LibvirtAdapterError(
                    f"libvirt refused the new definition of domain {self.name!r} ({how}): {_message(exc)}. "
                    "The domain definition was not changed."
                ) from None
        try:
            self.connection.conn.defineXMLFlags(xml, 0)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(
                f"libvirt refused the new definition of domain {self.name!r}: {_message(exc)}. "
                "The domain definition was not changed."
            ) from None
        return False

    def attach_live(self, xml: str) -> None:
        """Hot-plug a device into the running domain only (the definition is written separately)."""
        try:
            self.dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(_message(exc)) from None

    def detach_live(self, xml: str) -> None:
        try:
            self.dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(_message(exc)) from None


class Connection:
    """An open libvirt connection. Use as a context manager."""

    def __init__(self, uri: str) -> None:
        if not HAS_LIBVIRT:
            raise LibvirtAdapterError(
                "the Python library libvirt (libvirt-python) is required: install python3-libvirt or "
                "pip install libvirt-python on the host"
            )
        self.uri = uri
        libvirt.registerErrorHandler(_quiet, None)
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(
                f"libvirt is unreachable at {uri!r}: {_message(exc)}. Check that libvirtd (or virtqemud) is "
                "running on the host and that this user may connect to it (option uri)."
            ) from None
        self._schema: t.Any = None
        self._schema_loaded = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()

    def version(self) -> t.Tuple[int, int, int]:
        """The libvirt version of the daemon (``virConnectGetLibVersion``)."""
        try:
            return libvirt_int_to_version(self.conn.getLibVersion())
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot read the libvirt version at {self.uri!r}: {_message(exc)}") from None

    def lookup(self, name_or_uuid: str) -> Domain:
        """Find a domain by UUID (when the text looks like one) or by name."""
        attempts = []
        if looks_like_uuid(name_or_uuid):
            attempts.append(self.conn.lookupByUUIDString)
        attempts.append(self.conn.lookupByName)
        for lookup in attempts:
            try:
                return Domain(self, lookup(name_or_uuid))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise LibvirtAdapterError(f"cannot look up domain {name_or_uuid!r}: {_message(exc)}") from None
        raise LibvirtAdapterError(
            f"domain {name_or_uuid!r} not found at {self.uri!r}: give the name or UUID of an existing domain "
            "(virsh list --all), or use xml_file for a definition that is not defined yet"
        )

    def domains(self) -> t.List[Domain]:
        try:
            return [Domain(self, d) for d in self.conn.listAllDomains(0)]
        except libvirt.libvirtError as exc:
            raise LibvirtAdapterError(f"cannot list domains at {self.uri!r}: {_message(exc)}") from None

    def schema_validates(self, xml: str, schema: t.Optional[str] = None) -> t.Optional[bool]:
        """Does ``xml`` pass libvirt's domain schema? ``None`` when that cannot be told here.

        libvirt's ``VIR_DOMAIN_DEFINE_VALIDATE`` is a RelaxNG check against
        ``domain.rng``; for a local connection the same file is read with lxml.
        """
        if not self._schema_loaded:
            self._schema_loaded = True
            path = schema or DEFAULT_SCHEMA
            if uri_is_local(self.uri) and os.path.exists(path):
                with contextlib.suppress(Exception):
                    from lxml import etree

                    self._schema = etree.RelaxNG(etree.parse(path))
        if self._schema is None:
            return None
        from lxml import etree

        try:
            return bool(self._schema.validate(etree.fromstring(xml.encode("utf-8"))))
        except etree.XMLSyntaxError:
            return False


# ------------------------------------------------------------------------------------------
# Concurrency
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def domain_lock(uri: str, uuid: str, timeout: float = 120.0) -> t.Iterator[str]:
    """Serialise read-patch-define-verify of one domain between runs on this host.

    Two runs that patch the same domain at the same time would otherwise both read the same
    definition and the later define would drop the earlier run's share.
    """
    try:
        with exclusive_lock("domain", f"{uri}\0{uuid}", f"domain {uuid}", timeout) as path:
            yield path
    except LockTimeout as exc:
        raise LibvirtAdapterError(str(exc)) from None


# ------------------------------------------------------------------------------------------
# Runtime facts: virtiofsd processes, logs, vhost-user descriptors
# ------------------------------------------------------------------------------------------


def runtime_dirs(uri: str) -> t.Tuple[str, str]:
    """(state dir with pid files, log dir) of the qemu driver for ``uri``."""
    if urlparse(uri).path.rstrip("/") == "/session":
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return os.path.join(runtime, "libvirt", "qemu", "run"), os.path.join(cache, "libvirt", "qemu", "log")
    return SYSTEM_STATE_DIR, SYSTEM_LOG_DIR


def process_info(pid: int, proc: str = "/proc") -> t.Optional[t.Dict[str, t.Any]]:
    raw = read_bytes(f"{proc}/{pid}/cmdline", best_effort=True)
    if raw is None:
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    exe = None
    with contextlib.suppress(OSError):
        exe = os.readlink(f"{proc}/{pid}/exe")
    return {"pid": pid, "cmdline": argv, "exe": exe}


def _children_of(pid: int, proc: str = "/proc") -> t.List[int]:
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        stat = read_bytes(f"{proc}/{entry}/stat", best_effort=True)
        if not stat:
            continue
        # "pid (comm) state ppid ..." -- comm may contain spaces and parentheses
        rest = stat.rsplit(b")", 1)[-1].split()
        if len(rest) > 1 and rest[1].isdigit() and int(rest[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def _source_of(argv: t.Sequence[str]) -> t.Optional[str]:
    for i, arg in enumerate(argv):
        if arg == "--shared-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--shared-dir="):
            return arg.split("=", 1)[1]
        if arg == "-o" and i + 1 < len(argv):
            for item in argv[i + 1].replace("\\,", "\0").split(","):
                if item.startswith("source="):
                    return item[len("source="):].replace("\0", ",")
    return None


def virtiofsd_process(
    domain_name: str,
    domain_id: int,
    alias: t.Optional[str],
    source: t.Optional[str],
    uri: str = "qemu:///system",
    proc: str = "/proc",
) -> t.Dict[str, t.Any]:
    """Find the virtiofsd libvirt started for one share of a running domain.

    libvirt writes ``<state dir>/<id>-<name[:20]>-<alias>-fs.pid`` and logs the daemon's
    output to ``<log dir>/<name>-<alias>-virtiofsd.log``. When the pid file is missing the
    process table is searched for a daemon started with ``--fd=`` for the same source.
    """
    state_dir, log_dir = runtime_dirs(uri)
    info: t.Dict[str, t.Any] = {
        "running": False,
        "pid": None,
        "pid_file": None,
        "cmdline": None,
        "exe": None,
        "children": [],
        "log_path": os.path.join(log_dir, f"{domain_name}-{alias}-virtiofsd.log") if alias else None,
    }
    if alias:
        candidates = [os.path.join(state_dir, f"{domain_id}-{domain_name[:SHORT_NAME_MAX]}-{alias}-fs.pid")]
        candidates += sorted(glob.glob(os.path.join(glob.escape(state_dir), f"{domain_id}-*-{glob.escape(alias)}-fs.pid")))
        for path in candidates:
            raw = read_bytes(path, best_effort=True)
            if raw is None:
                continue
            info["pid_file"] = path
            with contextlib.suppress(ValueError):
                pid = int(raw.strip() or b"0")
                proc_info = process_info(pid, proc)
                if proc_info is not None:
                    info.update(proc_info, running=True)
                    info["children"] = _children_of(pid, proc)
            break
    if not info["running"] and source:
        for entry in sorted(os.listdir(proc), key=lambda e: (len(e), e)):
            if not entry.isdigit():
                continue
            proc_info = process_info(int(entry), proc)
            if not proc_info or not proc_info["cmdline"]:
                continue
            argv = proc_info["cmdline"]
            if any(a.startswith("--fd=") for a in argv) and _source_of(argv) == source:
                info.update(proc_info, running=True)
                info["children"] = _children_of(proc_info["pid"], proc)
                break
    if info["log_path"] is not None:
        info["log_exists"] = os.path.exists(info["log_path"])
    return info


def vhost_user_fs_descriptor(dirs: t.Sequence[str] = SYSTEM_DIRS) -> t.Optional[t.Dict[str, t.Any]]:
    """The vhost-user ``fs`` descriptor libvirt uses when a share has no ``<binary path>``.

    ``dirs`` lowest priority first; libvirt's rules are in ``_vhost_user``. ``None`` when
    libvirt would find no daemon there, or fail to read the descriptors at all.
    """
    found = lookup(dirs).selected
    if found is None or found.binary is None:
        return None
    return {"descriptor": found.path, "binary": found.binary, "description": found.description}
