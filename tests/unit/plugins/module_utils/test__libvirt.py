# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt adapter's refusals, against libvirt's own test driver (test:///default)."""
from __future__ import annotations

import re

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (  # noqa: E402
    Connection,
    LibvirtAdapterError,
)


def test_a_definition_libvirt_refuses_leaves_the_domain_unchanged():
    with Connection("test:///default") as conn:
        dom = conn.lookup("test")
        before = dom.inactive_xml()
        bad = re.sub(r"<vcpu([^>]*)>\d+</vcpu>", r"<vcpu\1>abc</vcpu>", before)
        assert bad != before
        with pytest.raises(LibvirtAdapterError) as err:
            dom.define(bad, before)
        assert "libvirt refused the new definition of domain 'test'" in str(err.value)
        assert str(err.value).endswith("The domain definition was not changed.")
        assert dom.inactive_xml() == before


def test_an_unknown_domain_names_the_fix():
    with Connection("test:///default") as conn:
        with pytest.raises(LibvirtAdapterError) as err:
            conn.lookup("no-such-domain")
    assert "domain 'no-such-domain' not found at 'test:///default'" in str(err.value)
    assert "(virsh list --all), or use xml_file for a definition that is not defined yet" in str(err.value)


# --- libvirt failing a read or a list (fault injection on the test driver's real objects) -----

def _broken(*_args, **_kwargs):
    raise libvirt.libvirtError("Cannot recv data: Connection reset by peer")


@pytest.mark.parametrize("call, attribute, expected", [
    ("is_active", "isActive", "cannot read the state of domain 'test': Cannot recv data"),
    ("is_persistent", "isPersistent", "cannot read domain 'test': Cannot recv data"),
    ("inactive_xml", "XMLDesc", "cannot read the definition of domain 'test': Cannot recv data"),
    ("live_xml", "XMLDesc", "cannot read the live XML of domain 'test': Cannot recv data"),
])
def test_a_domain_read_libvirt_fails_names_the_domain(monkeypatch, call, attribute, expected):
    with Connection("test:///default") as conn:
        dom = conn.lookup("test")
        before = dom.inactive_xml()
        monkeypatch.setattr(dom.dom, attribute, _broken)
        with pytest.raises(LibvirtAdapterError) as err:
            getattr(dom, call)()
        assert str(err.value) == expected + ": Connection reset by peer"
        monkeypatch.undo()
        assert dom.inactive_xml() == before  # a failed read changes nothing


@pytest.mark.parametrize("call, attribute, expected", [
    ("version", "getLibVersion", "cannot read the libvirt version at 'test:///default': Cannot recv data"),
    ("domains", "listAllDomains", "cannot list domains at 'test:///default': Cannot recv data"),
])
def test_a_connection_read_libvirt_fails_names_the_uri(monkeypatch, call, attribute, expected):
    with Connection("test:///default") as conn:
        monkeypatch.setattr(conn.conn, attribute, _broken)
        with pytest.raises(LibvirtAdapterError) as err:
            getattr(conn, call)()
        assert str(err.value) == expected + ": Connection reset by peer"


def test_a_lookup_libvirt_fails_is_not_reported_as_unknown(monkeypatch):
    with Connection("test:///default") as conn:
        monkeypatch.setattr(conn.conn, "lookupByName", _broken)
        with pytest.raises(LibvirtAdapterError) as err:
            conn.lookup("test")
    assert str(err.value) == "cannot look up domain 'test': Cannot recv data: Connection reset by peer"
    assert "not found" not in str(err.value)


@pytest.mark.parametrize("validates", [None, False])
def test_the_connection_breaking_while_defining_is_named(monkeypatch, validates):
    """With schema validation (first define) and without it (the plain define): the daemon is gone."""
    with Connection("test:///default") as conn:
        dom = conn.lookup("test")
        before = dom.inactive_xml()
        new = before.replace("</devices>", "<filesystem type='mount'><driver type='virtiofs'/>"
                             "<source dir='/srv'/><target dir='data'/></filesystem></devices>")
        monkeypatch.setattr(conn, "schema_validates", lambda xml, schema=None: validates)
        monkeypatch.setattr(conn.conn, "defineXMLFlags", _broken)
        monkeypatch.setattr(conn.conn, "isAlive", lambda: 0)
        with pytest.raises(LibvirtAdapterError) as err:
            dom.define(new, before)
        assert str(err.value) == "the connection broke while defining domain 'test': Cannot recv data: Connection reset by peer"
        monkeypatch.undo()
        assert dom.inactive_xml() == before


def test_the_connection_breaking_at_the_plain_define_after_a_schema_refusal(monkeypatch):
    """The schema cannot be read here (None), the validating define is refused for the schema, the
    plain define then finds the daemon gone."""
    calls = []

    def define(xml, flags):
        calls.append(flags)
        if flags:
            err = libvirt.libvirtError("XML document failed to validate against schema")
            err.err = (libvirt.VIR_ERR_XML_INVALID_SCHEMA, 0, "XML document failed to validate against schema",
                       0, "", None, None, 0, 0)
            raise err
        alive.append(0)
        raise libvirt.libvirtError("Cannot write data: Broken pipe")

    alive = [1]
    with Connection("test:///default") as conn:
        dom = conn.lookup("test")
        before = dom.inactive_xml()
        monkeypatch.setattr(conn, "schema_validates", lambda xml, schema=None: None)
        monkeypatch.setattr(conn.conn, "defineXMLFlags", define)
        monkeypatch.setattr(conn.conn, "isAlive", lambda: alive[-1])
        with pytest.raises(LibvirtAdapterError) as err:
            dom.define(before, before)
        assert calls == [libvirt.VIR_DOMAIN_DEFINE_VALIDATE, 0]
        assert str(err.value) == "the connection broke while defining domain 'test': Cannot write data: Broken pipe"
        monkeypatch.undo()
        assert dom.inactive_xml() == before


def test_without_libvirt_python_the_fix_is_named(monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _libvirt

    monkeypatch.setattr(_libvirt, "HAS_LIBVIRT", False)
    with pytest.raises(LibvirtAdapterError) as err:
        Connection("test:///default")
    assert str(err.value) == ("the Python library libvirt (libvirt-python) is required: install python3-libvirt or "
                              "pip install libvirt-python on the host")
