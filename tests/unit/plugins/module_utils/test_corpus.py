# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The patcher against a corpus of domain definitions nobody here wrote.

``VIRTIOFS_CORPUS_DIR`` names a directory of domain XML files (CI: ``../shared/corpus/domains``,
123 virt-manager test documents). For every file:

* ``test_corpus_roundtrip``: add a share, apply again (no change), remove it, and compare
  everything outside the owned subtree with the original (C14N 2.0).
* ``test_corpus_libvirt_accepts_patched``: where libvirt's ``test:///default`` driver accepts
  the original, it must accept the patched document too (and, where the original passes
  schema validation, the patched one must pass as well); what libvirt stored must match what
  was written. Originals libvirt rejects are skipped with libvirt's own reason.
"""
from __future__ import annotations

import pytest

from corpus_files import CORPUS_DIR, FILES, PARAMS, SKIP_REASON
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    DomainXML,
    ShareSpec,
    apply_shares,
    verify_converged,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version, libvirt_int_to_version

try:
    import libvirt
except ImportError:  # pragma: no cover
    libvirt = None

SPEC = ShareSpec(
    tag="corpus-share",
    source="/srv/corpus-share",
    binary_path="/usr/libexec/virtiofsd",
    xattr=True,
    cache="always",
    sandbox="chroot",
    thread_pool_size=4,
    queue_size=1024,
)
REMOVE = ShareSpec(tag="corpus-share", state="absent")


def _load(path):
    if path is None:
        pytest.skip(SKIP_REASON)
    return DomainXML.from_string(path.read_bytes(), what=path.name)


def test_corpus_is_complete():
    if not CORPUS_DIR:
        pytest.skip(SKIP_REASON)
    assert FILES, SKIP_REASON


@pytest.mark.parametrize("path", PARAMS)
def test_corpus_roundtrip(path):
    original = _load(path)
    doc = original.copy()

    added = apply_shares(doc, [SPEC])
    assert added.changed and added.added == ["corpus-share"]
    assert doc.memory_status()["shared"], "shared memory must be in place after adding a share"
    assert doc.outside_c14n([SPEC.tag]) == original.outside_c14n([SPEC.tag])
    patched_text = doc.to_string()

    again = DomainXML.from_string(patched_text)
    second = apply_shares(again, [SPEC])
    assert second.changed is False, second.actions
    assert again.to_string() == patched_text

    removed = apply_shares(again, [REMOVE])
    assert removed.changed and removed.removed == ["corpus-share"]
    assert again.find_share(SPEC.tag) is None
    assert again.outside_c14n([SPEC.tag]) == original.outside_c14n([SPEC.tag])
    # the other virtio-fs shares of the original are untouched
    assert again.shares() == original.shares()


@pytest.fixture(scope="module")
def test_conn():
    if libvirt is None:
        pytest.skip("libvirt-python is not installed")
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


def _prepare_for_test_driver(doc: DomainXML, conn) -> DomainXML:
    """The test driver already has a domain named ``test``: rename clashing domains."""
    doc = doc.copy()
    name_el = doc.root.find("name")
    existing = set(conn.listDefinedDomains()) | {d.name() for d in conn.listAllDomains()}
    if name_el is not None and (name_el.text or "").strip() in existing:
        name_el.text = "corpus-" + (name_el.text or "").strip()
    return doc


def _define(conn, text, flags=0):
    try:
        return conn.defineXMLFlags(text, flags), None
    except libvirt.libvirtError as exc:
        return None, exc.get_error_message()


@pytest.mark.parametrize("path", PARAMS)
def test_corpus_libvirt_accepts_patched(path, test_conn):
    original = _prepare_for_test_driver(_load(path), test_conn)
    dom, error = _define(test_conn, original.to_string())
    if dom is None:
        pytest.skip(f"libvirt {format_version(libvirt_int_to_version(libvirt.getVersion()))} test driver rejects the original: {error}")
    dom.undefine()
    validated, _error = _define(test_conn, original.to_string(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    original_validates = validated is not None
    if validated is not None:
        validated.undefine()

    patched = original.copy()
    apply_shares(patched, [SPEC])
    flags = libvirt.VIR_DOMAIN_DEFINE_VALIDATE if original_validates else 0
    dom, error = _define(test_conn, patched.to_string(), flags)
    assert dom is not None, f"libvirt rejects the patched document (validate={original_validates}): {error}"
    try:
        stored = DomainXML.from_string(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert verify_converged(patched, stored, [SPEC]) == []
        assert apply_shares(stored, [SPEC]).changed is False
    finally:
        dom.undefine()
