# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The only code in the collection that imports ``libvirt`` (libvirt-python).

Private module_utils: other collections must not import it.

No Ansible imports. Wraps the few libvirt calls the modules need (open a connection, look a
domain up by name or UUID, read the inactive/live XML, define, attach/detach live) and turns
``libvirtError`` into :class:`LibvirtAdapterError` with a message that names the fix. The
host facts around libvirt live elsewhere: the virtiofsd processes of running domains in
``_proc``, the per-domain lock in ``_lock``, the vhost-user descriptors in ``_vhost_user``.
"""

from __future__ import annotations

import contextlib
import os
import traceback
import typing as t
from urllib.parse import urlparse

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import looks_like_uuid
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
            if not self.connection.is_alive():  # the daemon may or may not have stored it
                raise LibvirtAdapterError(
                    f"the connection broke while defining domain {self.name!r}: {_message(exc)}"
                ) from None
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
            if not self.connection.is_alive():
                raise LibvirtAdapterError(
                    f"the connection broke while defining domain {self.name!r}: {_message(exc)}"
                ) from None
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

    def is_alive(self) -> bool:
        """False once the daemon went away (``virConnectIsAlive``; an error counts as gone)."""
        try:
            return bool(self.conn.isAlive())
        except libvirt.libvirtError:
            return False

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
