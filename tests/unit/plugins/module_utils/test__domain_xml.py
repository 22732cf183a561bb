# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the domain XML patcher on inactive XML written by real libvirt.

Fixtures (``fixtures/``, see ``fixtures/domain-xml-README.md``): ``libvirt-9.0-qemu-*.xml`` are
``virsh dumpxml --inactive`` output of libvirt 9.0.0's qemu driver for the inputs in
``fixtures/domain-src/``; ``libvirt-9.0-test-*.xml`` the same from the ``test:///default`` driver;
``libvirt-9.0-etc-file-*.xml`` the file libvirt keeps in ``/etc/libvirt/qemu``;
``libvirt-11-newer-style.xml`` a hand-checked definition in the style of newer libvirt
(openfiles, idmap, readonly on virtio-fs, firmware auto-selection).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from domain_strategies import share_specs, spec_lists

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    DomainXML,
    DomainXMLError,
    XML_FILE_MAX_BYTES,
    IdMapRange,
    ShareSpec,
    apply_shares,
    build_filesystem,
    canonical,
    check_domain_type,
    element_to_string,
    memory_status,
    read_xml_file,
    share_to_dict,
    tag_error,
    verify_converged,
)

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN_FIXTURES = sorted(p.name for p in FIXTURES.glob("libvirt-*.xml"))


def load(name: str) -> DomainXML:
    return DomainXML.from_file(str(FIXTURES / name))


def test_fixtures_present():
    assert "libvirt-9.0-qemu-q35-plain.xml" in DOMAIN_FIXTURES
    assert "libvirt-11-newer-style.xml" in DOMAIN_FIXTURES
    assert len(DOMAIN_FIXTURES) >= 7


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def test_parse_shares_libvirt9():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    shares = {s["tag"]: s for s in doc.shares()}
    assert sorted(shares) == ["data", "logs"]  # the 9p 'ninep' filesystem is not a share
    data = shares["data"]
    assert data["source"] == "/srv/data"
    assert data["binary_path"] == "/usr/libexec/virtiofsd"
    assert data["xattr"] is True
    assert data["cache"] == "always"
    assert data["sandbox"] == "chroot"
    assert data["thread_pool_size"] == 4
    assert data["queue_size"] == 1024
    assert data["lock"] == {"posix": "on", "flock": "on"}
    assert data["readonly"] is False
    assert shares["logs"]["alias"] == "ua-logs"
    assert shares["logs"]["source"] == "/srv/logs/"


def test_parse_shares_newer_style():
    doc = load("libvirt-11-newer-style.xml")
    (share,) = doc.shares()
    assert share["tag"] == "projects"
    assert share["readonly"] is True
    assert share["openfiles"] == 4096
    assert share["thread_pool_size"] == 16
    assert share["idmap"] == {
        "uid": [{"start": 0, "target": 100000, "count": 65535}],
        "gid": [{"start": 0, "target": 100000, "count": 65535}],
    }
    assert doc.memory_status()["shared"] is True


@pytest.mark.parametrize(
    "name, shared, source, access, hugepages, cells",
    [
        ("libvirt-9.0-qemu-q35-plain.xml", False, None, None, False, 0),
        ("libvirt-9.0-qemu-pc-shares.xml", True, "memfd", "shared", False, 0),
        ("libvirt-9.0-qemu-hugepages.xml", False, None, None, True, 0),
        ("libvirt-9.0-qemu-numa.xml", False, None, None, False, 2),
        ("libvirt-9.0-qemu-filebacked.xml", True, "file", "shared", False, 0),
    ],
)
def test_memory_status(name, shared, source, access, hugepages, cells):
    status = load(name).memory_status()
    assert status["shared"] is shared
    assert status["source"] == source
    assert status["access"] == access
    assert status["hugepages"] is hugepages
    assert status["numa_cells"] == cells


def test_malformed_xml_error():
    with pytest.raises(DomainXMLError, match="not well-formed XML"):
        DomainXML.from_string("<domain><name>x</name>", what="xml_file '/tmp/x.xml'")


def test_not_a_domain_error():
    with pytest.raises(DomainXMLError, match="root element is <network>, expected <domain>"):
        DomainXML.from_string("<network><name>default</name></network>")


def test_external_entities_not_resolved(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    text = (
        f'<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<domain><name>&x;</name></domain>"
    )
    doc = DomainXML.from_string(text)
    assert "TOPSECRET" not in doc.to_string()


# ---------------------------------------------------------------------------------------------
# Adding, updating, removing
# ---------------------------------------------------------------------------------------------


def full_spec(**kw) -> ShareSpec:
    base = dict(
        tag="data2",
        source="/srv/data2",
        binary_path="/opt/virtiofsd/virtiofsd.sh",
        xattr=True,
        cache="always",
        sandbox="chroot",
        thread_pool_size=8,
        queue_size=1024,
    )
    base.update(kw)
    return ShareSpec(**base)


def test_add_share_builds_libvirt_order_and_memfd():
    doc = load("libvirt-9.0-qemu-q35-plain.xml")
    result = apply_shares(doc, [full_spec()])
    assert result.changed
    assert result.added == ["data2"]
    assert result.memory_changed
    assert "memfd" in result.features and "thread_pool" in result.features
    fs = doc.find_share("data2")
    assert [c.tag for c in fs] == ["driver", "binary", "source", "target"]
    assert [c.tag for c in fs.find("binary")] == ["cache", "sandbox", "thread_pool"]
    assert fs.get("type") == "mount" and fs.get("accessmode") == "passthrough"
    mb = doc.root.find("memoryBacking")
    assert [(c.tag, dict(c.attrib)) for c in mb] == [("source", {"type": "memfd"}), ("access", {"mode": "shared"})]
    # memoryBacking sits where libvirt prints it: after currentMemory, before vcpu
    tags = [c.tag for c in doc.root if isinstance(c.tag, str)]
    assert tags.index("memoryBacking") == tags.index("currentMemory") + 1
    # new filesystem after the last controller (no filesystem before), before <serial>
    dev_tags = [c.tag for c in doc.devices if isinstance(c.tag, str)]
    assert dev_tags.index("filesystem") == len(dev_tags) - 1 - dev_tags[::-1].index("controller") + 1
    assert dev_tags[dev_tags.index("filesystem") + 1] == "serial"


def test_new_filesystem_goes_after_last_filesystem():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    apply_shares(doc, [ShareSpec(tag="new", source="/srv/new")])
    fss = doc.filesystems()
    assert [fs.find("target").get("dir") for fs in fss] == ["ninep", "data", "logs", "new"]
    assert fss[-1].getnext().tag == "interface"


def test_new_element_indented_like_neighbours():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    apply_shares(doc, [ShareSpec(tag="new", source="/srv/new", cache="none")])
    text = doc.to_string()
    assert (
        "    </filesystem>\n"
        '    <filesystem type="mount" accessmode="passthrough">\n'
        '      <driver type="virtiofs"/>\n'
        "      <binary>\n"
        '        <cache mode="none"/>\n'
        "      </binary>\n"
        '      <source dir="/srv/new"/>\n'
        '      <target dir="new"/>\n'
        "    </filesystem>\n"
        "    <interface" in text
    )


def test_update_keeps_address_alias_and_position():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    before_addr = etree.tostring(doc.find_share("logs").find("address"))
    result = apply_shares(doc, [ShareSpec(tag="logs", source="/srv/logs2", cache="none")])
    assert result.updated == ["logs"]
    assert result.actions == ["update share 'logs': source '/srv/logs/' -> '/srv/logs2', cache None -> 'none'"]
    fs = doc.find_share("logs")
    assert etree.tostring(fs.find("address")) == before_addr
    assert fs.find("alias").get("name") == "ua-logs"
    assert [f.find("target").get("dir") for f in doc.filesystems()] == ["ninep", "data", "logs"]
    assert not result.memory_changed


def test_update_removes_lock_with_warning_and_reports_other_locks():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    result = apply_shares(doc, [ShareSpec(tag="logs", source="/srv/logs/")])
    assert not result.changed
    assert any("share 'data' has <lock posix='on' flock='on'>" in w for w in result.warnings)
    assert doc.find_share("data").find("binary/lock") is not None  # not ours: untouched

    result = apply_shares(
        doc,
        [ShareSpec(tag="data", source="/srv/data", binary_path="/usr/libexec/virtiofsd", xattr=True,
                   cache="always", sandbox="chroot", thread_pool_size=4, queue_size=1024)],
    )
    assert result.changed and result.updated == ["data"]
    assert result.actions == ["update share 'data': lock {'posix': 'on', 'flock': 'on'} -> None"]
    assert result.warnings == ["share 'data': removed <lock> (the Rust virtiofsd rejects locking options)"]
    assert doc.find_share("data").find("binary/lock") is None
    assert "<lock" not in doc.to_string()


def test_unset_options_are_removed():
    doc = load("libvirt-11-newer-style.xml")
    result = apply_shares(doc, [ShareSpec(tag="projects", source="/srv/projects")])
    assert result.updated == ["projects"]
    fs = doc.find_share("projects")
    assert [c.tag for c in fs] == ["driver", "source", "target", "address"]
    assert fs.find("driver").attrib == {"type": "virtiofs"}
    assert share_to_dict(fs)["readonly"] is False


def test_remove_share_and_exclusive():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    result = apply_shares(doc, [ShareSpec(tag="logs", state="absent")])
    assert result.removed == ["logs"] and result.actions == ["remove share 'logs'"]
    assert [s["tag"] for s in doc.shares()] == ["data"]
    result = apply_shares(doc, [ShareSpec(tag="logs", state="absent")])
    assert not result.changed and result.actions == []

    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    result = apply_shares(doc, [ShareSpec(tag="new", source="/srv/new")], exclusive=True)
    assert sorted(result.removed) == ["data", "logs"]
    assert [s["tag"] for s in doc.shares()] == ["new"]
    assert [fs.find("target").get("dir") for fs in doc.filesystems()] == ["ninep", "new"]  # 9p kept


def test_remove_keeps_memory_backing():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    apply_shares(doc, [], exclusive=True)
    assert doc.shares() == []
    assert doc.memory_status()["shared"] is True


# ---------------------------------------------------------------------------------------------
# Semantic comparison
# ---------------------------------------------------------------------------------------------


def test_semantic_equality_ignores_defaults_quotes_order_address_alias():
    text = (
        '<domain type="qemu"><name>x</name><memory>1</memory>'
        '<memoryBacking><access mode="shared"/><source type="memfd"/></memoryBacking>'
        "<devices>"
        "<filesystem>"
        "  <target dir='t'/>"
        "  <source dir='/s'/>"
        "  <binary xattr='off' path='/usr/bin/virtiofsd'><thread_pool size='2'/><cache mode='none'/></binary>"
        "  <driver queue='512' type='virtiofs'/>"
        "  <alias name='ua-t'/>"
        "  <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>"
        "</filesystem>"
        "</devices></domain>"
    )
    doc = DomainXML.from_string(text)
    spec = ShareSpec(tag="t", source="/s", binary_path="/usr/bin/virtiofsd", xattr=False, cache="none",
                     thread_pool_size=2, queue_size=512)
    result = apply_shares(doc, [spec])
    assert result.changed is False
    assert result.actions == []
    assert doc.to_string() == DomainXML.from_string(text).to_string()


def test_canonical_fills_libvirt_defaults():
    a = etree.fromstring("<filesystem><driver type='virtiofs'/></filesystem>")
    b = etree.fromstring("<filesystem accessmode='passthrough' type='mount'>\n  <driver type='virtiofs'/>\n</filesystem>")
    c = etree.fromstring("<filesystem accessmode='mapped'><driver type='virtiofs'/></filesystem>")
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical(c)


def spec_from_share(d) -> ShareSpec:
    params = {k: v for k, v in d.items() if k not in ("lock", "alias", "boot_order", "source_socket")}
    return ShareSpec.from_params(params)


@pytest.mark.parametrize("name", DOMAIN_FIXTURES)
def test_reapplying_existing_shares_changes_nothing(name):
    doc = load(name)
    specs = [spec_from_share(d) for d in doc.shares() if d["lock"] is None]
    before = doc.to_bytes()
    result = apply_shares(doc, specs, memory_backing="skip" if not specs else "auto")
    assert not result.changed, result.actions
    assert doc.to_bytes() == before


# ---------------------------------------------------------------------------------------------
# Memory backing rules
# ---------------------------------------------------------------------------------------------


def test_hugepages_get_access_only_never_memfd():
    doc = load("libvirt-9.0-qemu-hugepages.xml")
    result = apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    mb = doc.root.find("memoryBacking")
    assert [c.tag for c in mb] == ["hugepages", "locked", "access"]
    assert mb.find("access").get("mode") == "shared"
    assert mb.find("source") is None
    assert "memfd" not in result.features
    assert result.actions[-1] == "add <memoryBacking><access mode='shared'/>"


def test_file_backing_with_shared_access_untouched():
    doc = load("libvirt-9.0-qemu-filebacked.xml")
    result = apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    assert not result.memory_changed
    assert result.memory_backing["before"] == result.memory_backing["after"]


def test_numa_all_shared_untouched_and_partial_gets_memory_backing():
    doc = load("libvirt-9.0-qemu-numa.xml")
    for cell in doc.root.iter("cell"):
        cell.set("memAccess", "shared")
    result = apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    assert not result.memory_changed
    assert doc.root.find("memoryBacking") is None

    doc = load("libvirt-9.0-qemu-numa.xml")  # cell 1 has no memAccess
    result = apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    assert result.memory_changed
    assert memory_status(doc.root)["shared"] is True
    assert "memfd" not in result.features  # memfd with NUMA cells predates 6.9.0
    assert [c.get("memAccess") for c in doc.root.iter("cell")] == ["shared", None]  # <numa> untouched


def test_numa_private_cell_is_an_error_and_nothing_changes():
    doc = load("libvirt-9.0-qemu-numa.xml")
    list(doc.root.iter("cell"))[1].set("memAccess", "private")
    before = doc.to_bytes()
    with pytest.raises(DomainXMLError, match=r"NUMA cell\(s\) 1 have memAccess='private'.*set memAccess='shared'"):
        apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    assert doc.to_bytes() == before


def test_anonymous_source_becomes_memfd():
    doc = load("libvirt-9.0-qemu-q35-plain.xml")
    mb = etree.Element("memoryBacking")
    etree.SubElement(mb, "source").set("type", "anonymous")
    doc.root.find("currentMemory").addnext(mb)
    apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    assert [(c.tag, dict(c.attrib)) for c in doc.root.find("memoryBacking")] == [
        ("source", {"type": "memfd"}), ("access", {"mode": "shared"})]


def test_memory_backing_skip():
    doc = load("libvirt-9.0-qemu-q35-plain.xml")
    result = apply_shares(doc, [ShareSpec(tag="x", source="/x")], memory_backing="skip")
    assert doc.root.find("memoryBacking") is None
    assert not result.memory_changed
    assert any("requires shared memory" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# Errors: each leaves the document as it was
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specs, pattern",
    [
        ([ShareSpec(tag="", source="/x")], "tag is empty: give the mount tag"),
        ([ShareSpec(tag="a" * 37, source="/x")], "is 37 bytes long but a virtio-fs tag holds at most 36 bytes"),
        ([ShareSpec(tag="\u00e9" * 19, source="/x")], "is 38 bytes long"),
        ([ShareSpec(tag="web data", source="/x")], r"tag 'web data' contains ' ': a tag may only contain A-Z a-z 0-9"),
        ([ShareSpec(tag="a,b#c", source="/x")], r"tag 'a,b#c' contains '#,'"),
        ([ShareSpec(tag="caf\u00e9", source="/x")], "contains '\u00e9'.*rename the share"),
        ([ShareSpec(tag="a\tb", source="/x")], "contains control characters: a tag may only contain .*; rename the share$"),
        ([ShareSpec(tag="a\nb", source="/x")], r"^tag 'a\\nb' contains control characters: .*; rename the share$"),
        ([ShareSpec(tag="a\x00b", source="/x")], r"^tag 'a\\x00b' contains control characters: .*; rename the share$"),
        ([ShareSpec(tag="a", source="/x"), ShareSpec(tag="a", state="absent")], "tag 'a' is given more than once"),
        ([ShareSpec(tag="ninep", source="/x")], r"tag 'ninep' is already used by a 9p filesystem .*choose another tag"),
        ([ShareSpec(tag="a", source="relative/dir")], "source 'relative/dir' is a relative path"),
        ([ShareSpec(tag="a")], "source is required with state=present"),
        ([ShareSpec(tag="a", source="/x", state="gone")], "state must be one of present, absent, got 'gone'"),
        ([ShareSpec(tag="a", source="/x", binary_path="virtiofsd")], "binary_path 'virtiofsd' is not absolute: give the absolute path"),
        ([ShareSpec(tag="a", source="/x", cache="auto")], "cache must be one of none, always"),
        ([ShareSpec(tag="a", source="/x", sandbox="none")], "sandbox must be one of namespace, chroot"),
        ([ShareSpec(tag="a", source="/x", openfiles=0)], "openfiles must be an integer >= 1"),
        ([ShareSpec(tag="a", source="/x", uid_map=[IdMapRange(0, 1, 0)])], "idmap uid range .* is invalid: start and target must be >= 0 and count >= 1"),
        ([ShareSpec(tag="a", source="/x", queue_size=1000)],
         "queue_size 1000 is not a power of two, which QEMU's vhost-user-fs device requires: use 512 or 1024"),
        ([ShareSpec(tag="a", source="/x", queue_size=3)], "queue_size 3 is not a power of two.*: use 2 or 4"),
        ([ShareSpec(tag="a", source="/x", queue_size=2048)],
         "queue_size 2048 is larger than 1024, the largest virtqueue QEMU's vhost-user-fs device accepts: use 1024 or less"),
        ([ShareSpec(tag="-o", source="/x")], "tag '-o' starts with '-', which mount and virtiofsd read as an option"),
        ([ShareSpec(tag="a", source="/srv/../etc")],
         r"source '/srv/../etc' has a '\.\.' component, whose meaning depends on symbolic links"),
    ],
)
def test_errors_leave_document_unchanged(specs, pattern):
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    before = doc.to_bytes()
    with pytest.raises(DomainXMLError, match=pattern):
        apply_shares(doc, specs)
    assert doc.to_bytes() == before


def test_unknown_memory_backing_mode_is_an_error_and_nothing_changes():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    before = doc.to_bytes()
    with pytest.raises(DomainXMLError) as err:
        apply_shares(doc, [ShareSpec(tag="new", source="/srv/new")], memory_backing="shared")
    assert "memory_backing must be one of" in str(err.value) and "got 'shared'" in str(err.value)
    assert doc.to_bytes() == before


def test_duplicate_virtiofs_tag_in_document_is_an_error():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    dup = copy.deepcopy(doc.find_share("logs"))
    doc.devices.append(dup)
    before = doc.to_bytes()
    with pytest.raises(DomainXMLError, match="2 virtio-fs filesystems with tag 'logs'"):
        apply_shares(doc, [ShareSpec(tag="logs", source="/srv/logs")])
    assert doc.to_bytes() == before


def test_spec_from_params_idmap_and_errors():
    spec = ShareSpec.from_params({
        "tag": "t", "source": "/s", "state": None,
        "idmap": {"uid": [{"start": 0, "target": 1000, "count": 1}], "gid": None},
    })
    assert spec.state == "present"
    assert spec.uid_map == [IdMapRange(0, 1000, 1)] and spec.gid_map == []
    assert spec.features() == ["virtiofs", "idmap"]
    with pytest.raises(DomainXMLError, match=r"idmap.uid\[0\] must be a dict with the integers start, target and count"):
        ShareSpec.from_params({"tag": "t", "idmap": {"uid": [{"start": 0}]}})
    with pytest.raises(DomainXMLError, match="idmap must be a dict with the keys uid and gid"):
        ShareSpec.from_params({"tag": "t", "idmap": "0:1000:1"})


def test_features_of_spec():
    spec = ShareSpec(tag="t", source="/s", readonly=True, openfiles=10, sandbox="chroot", thread_pool_size=0)
    assert spec.features() == ["virtiofs", "sandbox", "thread_pool", "openfiles", "readonly"]
    assert ShareSpec(tag="t", state="absent").features() == []


# ---------------------------------------------------------------------------------------------
# Documents kept as they were
# ---------------------------------------------------------------------------------------------


def test_comments_metadata_and_namespaces_preserved():
    doc = load("libvirt-9.0-etc-file-q35-plain.xml")
    before_outside = doc.outside_c14n()
    apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    text = doc.to_string()
    assert text.startswith("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.")
    assert "\nor other application using the libvirt API.\n-->\n<domain " in text
    assert '<app:info xmlns:app="http://example.org/app/1.0">' in text
    assert "<qemu:arg value=\"user,id=n0,hostfwd=tcp:127.0.0.1:2299-:22\"/>" in text
    assert doc.outside_c14n() == before_outside


def test_xml_declaration_and_trailing_newline_kept():
    text = '<?xml version="1.0" encoding="UTF-8"?>\n<domain>\n  <name>x</name>\n  <devices/>\n</domain>\n'
    doc = DomainXML.from_string(text)
    apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    out = doc.to_string()
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<domain>')  # its own text, not lxml's
    assert out.endswith("</domain>\n")
    assert DomainXML.from_string(out).find_share("x") is not None


def test_encoding_doctype_and_comments_around_root_kept():
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE domain>\n<!-- one -->\n<!-- two -->\n'
        "<domain><name>caf\xe9</name></domain>\n<!-- after -->\n"
    ).encode("iso-8859-1")
    doc = DomainXML.from_string(text)
    apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    out = doc.to_bytes()
    assert out.startswith(
        b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE domain>\n<!-- one -->\n<!-- two -->\n<domain>'
    )
    assert out.endswith(b"</domain>\n<!-- after -->\n")
    assert b"<name>caf\xe9</name>" in out
    assert DomainXML.from_string(out).name == "caf\xe9"


@pytest.mark.parametrize(
    "devices",
    ["\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  ", "\n    <!-- no devices yet -->\n  ", None],
)
def test_add_then_remove_restores_bytes_when_share_is_last_device(devices):
    text = (
        "<domain type='qemu'>\n  <name>x</name>\n  <memoryBacking>\n    <source type='memfd'/>\n"
        "    <access mode='shared'/>\n  </memoryBacking>\n  "
        + ("<devices/>" if devices is None else "<devices>" + devices + "</devices>")
        + "\n</domain>\n"
    )
    original = DomainXML.from_string(text).to_bytes()
    doc = DomainXML.from_string(text)
    apply_shares(doc, [ShareSpec(tag="x", source="/x", cache="none")])
    added = doc.to_string()
    assert "    <filesystem" in added and "\n  </devices>" in added
    apply_shares(doc, [ShareSpec(tag="x", state="absent")])
    assert doc.to_bytes() == original


def test_domain_without_devices_gets_devices():
    doc = DomainXML.from_string(
        "<domain type='qemu'><name>x</name><memory>1</memory><os><type>hvm</type></os>"
        "<on_crash>destroy</on_crash><seclabel type='none'/></domain>"
    )
    apply_shares(doc, [ShareSpec(tag="x", source="/x")])
    tags = [c.tag for c in doc.root]
    assert tags == ["name", "memory", "memoryBacking", "os", "on_crash", "devices", "seclabel"]


def test_element_to_string_strips_address():
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    text = element_to_string(doc.find_share("logs"), strip=("address",))
    el = etree.fromstring(text)
    assert el.find("address") is None and el.find("target").get("dir") == "logs"


def test_build_filesystem_matches_libvirt_output():
    """A share built by the patcher compares equal to the same share as libvirt 9.0 printed it."""
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    libvirt_el = doc.find_share("data")
    spec = ShareSpec(tag="data", source="/srv/data", binary_path="/usr/libexec/virtiofsd", xattr=True,
                     cache="always", sandbox="chroot", thread_pool_size=4, queue_size=1024)
    ours = build_filesystem(spec)
    lock = libvirt_el.find("binary/lock")
    lock.getparent().remove(lock)
    assert canonical(ours) == canonical(libvirt_el)


def test_verify_converged_reports_dropped_option():
    wanted = load("libvirt-9.0-qemu-q35-plain.xml")
    spec = ShareSpec(tag="x", source="/x", openfiles=1000, binary_path="/usr/bin/virtiofsd")
    apply_shares(wanted, [spec])
    stored = wanted.copy()
    openfiles = stored.find_share("x").find("binary/openfiles")
    openfiles.getparent().remove(openfiles)
    assert verify_converged(wanted, wanted.copy(), [spec]) == []
    problems = verify_converged(wanted, stored, [spec])
    assert problems == ["libvirt stored share 'x' differently: openfiles wanted 1000, stored None"]
    gone = wanted.copy()
    apply_shares(gone, [ShareSpec(tag="x", state="absent")])
    assert verify_converged(wanted, gone, [spec]) == ["share 'x' is missing from the definition libvirt stored"]


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ---------------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(name=st.sampled_from(DOMAIN_FIXTURES), specs=spec_lists(), exclusive=st.booleans())
def test_apply_twice_equals_apply_once(name, specs, exclusive):
    once = load(name)
    apply_shares(once, specs, exclusive=exclusive)
    text_once = once.to_string()
    twice = DomainXML.from_string(text_once)
    result = apply_shares(twice, specs, exclusive=exclusive)
    assert result.changed is False
    assert result.actions == []
    assert twice.to_string() == text_once


@PROPERTY_SETTINGS
@given(name=st.sampled_from(DOMAIN_FIXTURES), specs=spec_lists())
def test_remove_after_add_restores_everything_outside(name, specs):
    original = load(name)
    tags = [s.tag for s in specs]
    doc = load(name)
    apply_shares(doc, specs)
    for spec in specs:
        assert share_to_dict(doc.find_share(spec.tag))["source"] == spec.source
    apply_shares(doc, [ShareSpec(tag=t_, state="absent") for t_ in tags])
    assert all(doc.find_share(t_) is None for t_ in tags)
    assert doc.outside_c14n(tags) == original.outside_c14n(tags)
    # Where the fixture already had shared memory and none of the tags existed, nothing at
    # all changed, not even whitespace.
    if original.memory_status()["shared"] and not any(original.find_share(t_) is not None for t_ in tags):
        assert doc.to_bytes() == original.to_bytes()


@PROPERTY_SETTINGS
@given(name=st.sampled_from(DOMAIN_FIXTURES), specs=spec_lists(), exclusive=st.booleans())
def test_unrelated_elements_unchanged(name, specs, exclusive):
    original = load(name)
    doc = load(name)
    apply_shares(doc, specs, exclusive=exclusive)
    tags = None if exclusive else [s.tag for s in specs]
    assert doc.outside_c14n(tags) == original.outside_c14n(tags)

    # every non-owned element keeps its exact serialisation (attribute order, quoting aside)
    def others(d):
        return [etree.tostring(c) for c in d.root if isinstance(c.tag, str) and c.tag not in ("devices", "memoryBacking")]
    assert others(doc) == others(original)

    def other_devices(d):
        devs = d.devices
        if devs is None:
            return []
        return [etree.tostring(c, with_tail=False) for c in devs
                if not (isinstance(c.tag, str) and c.tag == "filesystem" and c.find("driver") is not None
                        and c.find("driver").get("type") == "virtiofs")]
    assert other_devices(doc) == other_devices(original)


@PROPERTY_SETTINGS
@given(spec=share_specs())
def test_spec_round_trips_through_element(spec):
    el = build_filesystem(spec)
    parsed = share_to_dict(el)
    want = spec.to_dict()
    for key, value in want.items():
        if key == "idmap" and value is not None:
            assert parsed["idmap"] == value
        else:
            assert parsed[key] == value, key


# ---------------------------------------------------------------------------------------------
# Against the real libvirt test driver (in-process, no daemon)
# ---------------------------------------------------------------------------------------------

try:
    import libvirt
except ImportError:  # pragma: no cover
    libvirt = None


@pytest.fixture()
def test_conn():
    if libvirt is None:
        pytest.skip("libvirt-python is not installed")
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


@pytest.mark.parametrize("name", ["libvirt-9.0-qemu-q35-plain.xml", "libvirt-9.0-qemu-pc-shares.xml",
                                  "libvirt-9.0-qemu-hugepages.xml", "libvirt-9.0-qemu-numa.xml"])
def test_libvirt_stores_what_the_patcher_wrote(test_conn, name):
    doc = load(name)
    spec = ShareSpec(tag="unit-share", source="/srv/unit", binary_path="/usr/libexec/virtiofsd", xattr=True,
                     cache="none", sandbox="namespace", thread_pool_size=2, queue_size=1024)
    apply_shares(doc, [spec])
    dom = test_conn.defineXMLFlags(doc.to_string(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    try:
        stored = DomainXML.from_string(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert verify_converged(doc, stored, [spec]) == []
        again = apply_shares(stored, [spec])
        assert again.changed is False, again.actions
    finally:
        dom.undefine()


def test_libvirt_9_drops_openfiles_and_verification_notices(test_conn):
    """libvirt 9.0 silently drops <openfiles> (too new); VALIDATE refuses it."""
    if libvirt.getVersion() >= 10006000:
        pytest.skip("this libvirt knows <openfiles>")
    doc = load("libvirt-9.0-qemu-q35-plain.xml")
    spec = ShareSpec(tag="of", source="/srv/of", binary_path="/usr/libexec/virtiofsd", openfiles=1000)
    apply_shares(doc, [spec])
    with pytest.raises(libvirt.libvirtError):
        test_conn.defineXMLFlags(doc.to_string(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    dom = test_conn.defineXML(doc.to_string())
    try:
        stored = DomainXML.from_string(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert verify_converged(doc, stored, [spec]) == [
            "libvirt stored share 'of' differently: openfiles wanted 1000, stored None"]
    finally:
        dom.undefine()


@pytest.mark.parametrize("path", ["/opt/w//v.sh", "/opt/./w/v.sh", "/opt/x/../w/v.sh", "/opt/w/"])
def test_binary_path_not_in_normal_form_is_refused(path):
    spec = ShareSpec.from_params({"tag": "t", "source": "/srv/t", "binary_path": path})
    with pytest.raises(DomainXMLError, match="not in normal form"):
        spec.validate()


@pytest.mark.parametrize("tag", ["a", "data", "web-01_v2.x", "host:/srv@x+y=z", "t" * 36])
def test_tag_error_accepts_fstab_safe_tags(tag):
    assert tag_error(tag) is None
    ShareSpec(tag=tag, source="/x").validate()


def test_tag_error_strict_only_for_present_shares():
    # libvirt stores any tag (seen on 9.0: 40 bytes, a tab); removing such a share must stay possible
    for tag in ("old share, v1", "x" * 40, "a\tb"):
        ShareSpec(tag=tag, state="absent").validate()
        assert tag_error(tag, strict=False) is None
    assert "contains ' ,'" in tag_error("old share, v1")
    assert "is 40 bytes long" in tag_error("x" * 40)
    assert tag_error("", strict=False).startswith("tag is empty")


@pytest.mark.parametrize("tag", [123, 1.5, True, ["a"], {"a": 1}])
def test_tag_error_names_non_strings(tag):
    assert tag_error(tag).startswith("tag must be a string, got ")


def test_without_lxml_the_fix_is_named(tmp_path, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _domain_xml

    path = tmp_path / "d.xml"
    path.write_text("<domain type='kvm'><name>d</name></domain>")
    before = path.read_bytes()
    monkeypatch.setattr(_domain_xml, "HAS_LXML", False)
    with pytest.raises(DomainXMLError) as err:
        _domain_xml.DomainXML.from_file(str(path))
    assert str(err.value) == "the Python library lxml is required (install python3-lxml or pip install lxml)"
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# queue_size, source normal form, domain type, reading xml_file
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2, 64, 128, 256, 512, 1024])
def test_queue_size_powers_of_two_up_to_1024_are_accepted(value):
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    apply_shares(doc, [ShareSpec(tag="q", source="/x", queue_size=value)])
    assert doc.find_share("q").find("driver").get("queue") == str(value)


@pytest.mark.parametrize("given, normal", [
    ("/srv/x/", "/srv/x"), ("//srv/x", "/srv/x"), ("/srv//x", "/srv/x"), ("/srv/./x/.", "/srv/x"), ("/", "/"),
])
def test_source_is_normalised_and_a_trailing_slash_is_the_same_share(given, normal):
    spec = ShareSpec.from_params({"tag": "n", "source": given})
    assert spec.source == normal
    doc = load("libvirt-9.0-qemu-pc-shares.xml")
    apply_shares(doc, [spec])
    assert doc.find_share("n").find("source").get("dir") == normal
    # a definition that says '/srv/x/' (libvirt keeps it as written) already is the share '/srv/x'
    doc.find_share("n").find("source").set("dir", given)
    before = doc.to_bytes()
    again = apply_shares(doc, [ShareSpec.from_params({"tag": "n", "source": normal})])
    assert again.changed is False and again.actions == [] and doc.to_bytes() == before
    # another directory still is a change
    moved = apply_shares(doc, [ShareSpec.from_params({"tag": "n", "source": "/srv/y"})])
    assert moved.changed is True and doc.find_share("n").find("source").get("dir") == "/srv/y"


def test_source_with_dotdot_is_refused_not_normalised():
    spec = ShareSpec.from_params({"tag": "n", "source": "/srv/a/../b"})
    assert spec.source == "/srv/a/../b"  # kept as given, so the refusal names what the user wrote
    with pytest.raises(DomainXMLError, match=r"source '/srv/a/\.\./b' has a '\.\.' component.*without '\.\.'"):
        spec.validate()


@pytest.mark.parametrize("dtype", ["lxc", "xen", "bhyve"])
def test_a_non_qemu_domain_is_refused(dtype):
    doc = DomainXML.from_string(f"<domain type='{dtype}'><name>c</name><devices/></domain>")
    with pytest.raises(DomainXMLError) as err:
        check_domain_type(doc, [ShareSpec(tag="a", source="/x")], what="xml_file '/x.xml'")
    assert str(err.value).startswith(
        f"xml_file '/x.xml' is a <domain type='{dtype}'>, but virtio-fs shares need a QEMU domain (type 'kvm' or 'qemu')"
    )
    # removing shares is fine anywhere, and kvm/qemu/test (libvirt's test driver) and no type pass
    check_domain_type(doc, [ShareSpec(tag="a", state="absent")])
    for ok in ("kvm", "qemu", "test"):
        check_domain_type(DomainXML.from_string(f"<domain type='{ok}'/>"), [ShareSpec(tag="a", source="/x")])
    check_domain_type(DomainXML.from_string("<domain/>"), [ShareSpec(tag="a", source="/x")])


def test_read_xml_file_refuses_what_is_not_a_regular_file_before_opening_it(tmp_path):
    import os

    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(DomainXMLError, match=r"xml_file '.*pipe.xml' is a FIFO \(named pipe\), not a regular file: "
                                             "give the path of a domain XML file"):
        read_xml_file(str(fifo))
    with pytest.raises(DomainXMLError, match=r"xml_file '.*' is a directory, not a regular file"):
        read_xml_file(str(tmp_path))
    with pytest.raises(DomainXMLError, match=r"xml_file '/dev/null' is a character device, not a regular file"):
        read_xml_file("/dev/null")
    with pytest.raises(DomainXMLError, match="cannot read xml_file .*: No such file or directory"):
        read_xml_file(str(tmp_path / "missing.xml"))


def test_read_xml_file_refuses_a_file_larger_than_virsh_reads(tmp_path):
    big = tmp_path / "big.xml"
    with open(big, "wb") as f:
        f.write(b"<domain type='kvm'><name>big</name><description>")
        f.truncate(XML_FILE_MAX_BYTES + 1)  # sparse: the size is what counts
    with pytest.raises(DomainXMLError) as err:
        read_xml_file(str(big))
    assert f"is {XML_FILE_MAX_BYTES + 1} bytes, more than the 10485760 bytes (10 MiB) virsh define reads" in str(err.value)
    assert str(err.value).endswith("it is not a domain definition; check the path")
    ok = tmp_path / "ok.xml"
    ok.write_bytes(b"<domain type='kvm'/>")
    assert read_xml_file(str(ok)) == b"<domain type='kvm'/>"
