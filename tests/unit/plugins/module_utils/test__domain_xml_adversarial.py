# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faithful write-back on hostile input (issue 12).

Every case runs the real engine (``_share.converge_file`` on a real file) and ends in one of
two outcomes: the written document, re-read, equals the input canonically (C14N 2.0) outside
the elements the module owns, or a clear refusal and the file's bytes unchanged. The
canonical form here is computed independently of the module (XPath + lxml's C14N 2.0).
"""
from __future__ import annotations

import contextlib
import difflib
import os

import pytest
from lxml import etree

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _domain_xml
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXML, DomainXMLError, faithful_bytes
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share import (
    DomainRequest,
    Host,
    Settings,
    ShareValidationError,
    converge_domains,
    converge_file,
)

UUID = "6f1f2c1e-8d7a-4b53-9a55-0d2f1f6f0a11"
HEAD = f"<domain type='kvm'><name>adv</name><uuid>{UUID}</uuid><memory unit='KiB'>524288</memory>"
OS = "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
DISK = ("<disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>")
FS_OLD = ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
          "<source dir='/srv/old'/><target dir='old'/></filesystem>")
FS_KEEP = ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
           "<source dir='/srv/keep'/><target dir='keep'/></filesystem>")


def doc(devices: str = DISK, head: str = HEAD, between: str = "", before: str = "", after: str = "") -> str:
    return f"{before}{head}{between}{OS}<devices>{devices}</devices></domain>{after}"


@pytest.fixture
def host():
    @contextlib.contextmanager
    def lock(uri, uid, timeout):
        yield "/run/lock/fake"

    return Host(connect=lambda uri: None, lock=lock, set_attributes=lambda *a: None,
                backup_file=lambda path: path + ".bak")


def outside(data: bytes) -> bytes:
    """C14N 2.0 of a document without the owned elements (independent of the module)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    tree = etree.fromstring(data, parser).getroottree()
    root = tree.getroot()
    for fs in root.xpath("devices/filesystem[driver/@type='virtiofs']"):
        fs.getparent().remove(fs)
    for el in root.xpath("memoryBacking/source | memoryBacking/access"):
        el.getparent().remove(el)
    empty = "[not(*|comment()|processing-instruction()) and not(normalize-space()) and not(@*)]"
    for el in root.xpath(f"memoryBacking{empty} | devices{empty}"):
        root.remove(el)
    for el in root.iter():
        if len(el) and el.text is not None and not el.text.strip():
            el.text = None
        if el is not root and el.tail is not None and not el.tail.strip():
            el.tail = None
    return etree.tostring(tree, method="c14n2")


def run(tmp_path, host, data, entries=None, **settings):
    """converge_file on ``data``: (result or the exception, bytes before, bytes after)."""
    path = tmp_path / "d.xml"
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    path.write_bytes(raw)
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    entries = entries if entries is not None else [{"tag": "data", "source": str(src)}]
    try:
        out = converge_file(str(path), entries, Settings(**settings), host)
    except DomainXMLError as exc:
        out = exc
    assert sorted(os.listdir(tmp_path)) == ["d.xml", "src"]  # no temporary or backup file
    return out, raw, path.read_bytes()


def kept(out, raw, new):
    """The run succeeded, changed the file, and kept everything outside the owned elements."""
    assert not isinstance(out, Exception), out
    assert out["changed"] is True and new != raw
    assert outside(new) == outside(raw)
    again = DomainXML.from_string(new)
    assert again.find_share("data") is not None


def refused(out, raw, new, *words):
    """A clear refusal naming the problem and a fix; the file's bytes unchanged."""
    assert isinstance(out, DomainXMLError), out
    msg = str(out)
    for w in words:
        assert w in msg, msg
    assert "nothing was written" in msg and "UTF-8" in msg, msg
    assert new == raw


# ------------------------------------------------------------------------------- DTDs, entities

def test_internal_entity_is_refused(tmp_path, host):
    data = doc(before="<!DOCTYPE domain [<!ENTITY who 'ops team'>]>\n",
               between="<description>owned by &who;</description>")
    refused(*run(tmp_path, host, data), "DTD entities (who)")


def test_internal_dtd_subset_without_entities_is_refused(tmp_path, host):
    data = doc(before="<!DOCTYPE domain [<!ELEMENT domain ANY>]>\n")
    refused(*run(tmp_path, host, data), "internal DTD subset",
            "convert it to plain UTF-8 XML without a DTD (for example `xmllint --noent --dropdtd --encode UTF-8 FILE`)")


@pytest.mark.parametrize("doctype", ["<!DOCTYPE notdomain>", '<!DOCTYPE notdomain SYSTEM "x.dtd">'])
def test_a_doctype_naming_another_root_is_refused_for_what_it_is(tmp_path, host, doctype):
    out, raw, new = run(tmp_path, host, doc(before=doctype + "\n"))
    refused(out, raw, new, "declares <!DOCTYPE notdomain> but its root element is <domain>: the DOCTYPE must name "
                           "the root element (<!DOCTYPE domain>) or be removed")
    assert "internal DTD subset" not in str(out)


def test_external_entity_is_refused_and_never_read(tmp_path, host):
    (tmp_path / "src").mkdir()
    secret = tmp_path / "src" / "secret"
    secret.write_text("TOPSECRET")
    data = doc(before=f"<!DOCTYPE domain [<!ENTITY x SYSTEM 'file://{secret}'>]>\n",
               between="<description>&x;</description>")
    out, raw, new = run(tmp_path, host, data)
    refused(out, raw, new, "DTD entities (x)")
    assert b"TOPSECRET" not in new


def test_billion_laughs_is_refused(tmp_path, host):
    ents = "<!ENTITY l0 'ha'>" + "".join(f"<!ENTITY l{i} '{('&l%d;' % (i - 1)) * 10}'>" for i in range(1, 10))
    data = doc(before=f"<!DOCTYPE domain [{ents}]>\n", between="<description>&l9;</description>")
    out, raw, new = run(tmp_path, host, data)
    assert isinstance(out, DomainXMLError) and "not well-formed XML" in str(out), out  # libxml2's own limit
    assert "amplification" in str(out) and new == raw


def test_many_entities_below_the_amplification_limit_are_refused(tmp_path, host):
    ents = "".join(f"<!ENTITY e{i} 'v{i}'>" for i in range(3))
    data = doc(before=f"<!DOCTYPE domain [{ents}]>\n", between="<description>&e0;&e1;&e2;</description>")
    refused(*run(tmp_path, host, data), "DTD entities (e0, e1, e2)")


def test_external_dtd_is_kept_and_not_loaded(tmp_path, host):
    """The parser loads no DTD (no network): the reference is written back as it was."""
    data = doc(before="<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'>\n")
    out, raw, new = run(tmp_path, host, data)
    kept(out, raw, new)
    assert new.startswith(b'<!DOCTYPE domain SYSTEM "http://127.0.0.1:9/domain.dtd">\n<domain')


def test_an_entity_of_an_external_dtd_is_refused(tmp_path, host):
    data = doc(before="<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'>\n",
               between="<description>&ext;</description>")
    out, raw, new = run(tmp_path, host, data)
    assert isinstance(out, DomainXMLError) and new == raw
    assert "&ext;" in str(out) or "ext" in str(out), out


def test_plain_doctype_is_kept(tmp_path, host):
    out, raw, new = run(tmp_path, host, doc(before="<!DOCTYPE domain>\n"))
    kept(out, raw, new)
    assert new.startswith(b"<!DOCTYPE domain>\n<domain")


def test_a_refused_document_is_refused_in_check_mode_too(tmp_path, host):
    data = doc(before="<!DOCTYPE domain [<!ENTITY who 'x'>]>\n", between="<description>&who;</description>")
    refused(*run(tmp_path, host, data, check_mode=True), "DTD entities (who)")


def test_a_document_that_needs_no_change_is_not_refused(tmp_path, host):
    """Nothing is written, so nothing can be lost: a run without a change succeeds."""
    data = doc(devices=DISK, before="<!DOCTYPE domain [<!ENTITY who 'x'>]>\n",
               between="<description>&who;</description>")
    out, raw, new = run(tmp_path, host, data, entries=[{"tag": "data", "state": "absent"}])
    assert out["changed"] is False and new == raw


# --------------------------------------------------------------------------- comments and PIs

def test_comments_and_pis_in_odd_places_are_kept(tmp_path, host):
    devices = (f"<!-- before the disk -->{DISK}<?keep me?>{FS_KEEP}<!-- between shares -->{FS_OLD}"
               "<!-- last in devices -->")
    data = doc(devices=devices, before="<?xml version='1.0'?>\n<!-- top --><?app x='1'?>\n",
               between="<!-- inside domain --><?pi inside?>", after="\n<!-- trailing --><?tail pi?>\n")
    out, raw, new = run(tmp_path, host, data)
    kept(out, raw, new)
    assert new.index(b"<!-- trailing -->") < new.index(b"<?tail pi?>")  # order after the root kept
    assert new.index(b"<!-- top -->") < new.index(b"<?app x='1'?>")
    for piece in (b"<!-- top -->", b"<?app x='1'?>", b"<!-- between shares -->", b"<?keep me?>",
                  b"<!-- last in devices -->", b"<!-- trailing -->", b"<?tail pi?>", b"<!-- inside domain -->"):
        assert piece in new, piece


def test_removing_and_changing_shares_next_to_comments_keeps_the_comments(tmp_path, host):
    devices = f"{DISK}<!-- a -->{FS_KEEP}<!-- b -->{FS_OLD}<!-- c -->"
    src = tmp_path / "src"
    entries = [{"tag": "old", "state": "absent"}, {"tag": "keep", "source": str(src), "cache": "none"},
               {"tag": "data", "source": str(src)}]
    out, raw, new = run(tmp_path, host, doc(devices=devices), entries=entries)
    kept(out, raw, new)
    assert new.count(b"<!--") == 3
    d = DomainXML.from_string(new)
    assert d.find_share("old") is None and d.find_share("keep").find("source").get("dir") == str(src)


def test_cdata_is_kept_as_cdata(tmp_path, host):
    data = doc(between="<description><![CDATA[a <b> & c ]]></description>")
    out, raw, new = run(tmp_path, host, data)
    kept(out, raw, new)
    assert b"<description><![CDATA[a <b> & c ]]></description>" in new  # byte for byte, not escaped
    assert etree.fromstring(new).findtext("description") == "a <b> & c "


# ------------------------------------------------------------------------------------ encodings

def test_iso_8859_1_declared_is_kept(tmp_path, host):
    text = "<?xml version='1.0' encoding='ISO-8859-1'?>\n" + doc(between="<description>caf\u00e9 \u00e0 c\u00f4t\u00e9</description>")
    out, raw, new = run(tmp_path, host, text.encode("latin-1"))
    kept(out, raw, new)
    assert new.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    assert "caf\u00e9".encode("latin-1") in new


def test_utf16_is_refused(tmp_path, host):
    text = "<?xml version='1.0' encoding='UTF-16'?>\n" + doc(between="<description>\u00e9</description>")
    refused(*run(tmp_path, host, text.encode("utf-16")), "encoded in UTF-16", "which the module does not write back")


def test_utf8_bom_is_accepted(tmp_path, host):
    out, raw, new = run(tmp_path, host, b"\xef\xbb\xbf" + doc().encode())
    kept(out, raw, new)


def test_characters_outside_latin1_in_a_latin1_document_are_kept(tmp_path, host):
    text = "<?xml version='1.0' encoding='ISO-8859-1'?>\n" + doc(between="<description>&#8364; &#x1F600;</description>")
    out, raw, new = run(tmp_path, host, text.encode("latin-1"))
    kept(out, raw, new)
    assert etree.fromstring(new).findtext("description") == "\u20ac \U0001F600"


# ---------------------------------------------------------------------------- foreign namespaces

def test_foreign_namespaces_are_kept(tmp_path, host):
    head = (f"<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
            f"<name>adv</name><uuid>{UUID}</uuid><memory unit='KiB'>524288</memory>")
    meta = ("<metadata><app:conf xmlns:app='http://example.org/app/1' app:level='3'><app:item>x</app:item>"
            "</app:conf><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
            "<libosinfo:os id='http://debian.org/debian/12'/></libosinfo:libosinfo></metadata>")
    tail = "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline>"
    data = f"{head}{meta}{OS}<devices>{DISK}</devices>{tail}</domain>"
    out, raw, new = run(tmp_path, host, data)
    kept(out, raw, new)
    root = etree.fromstring(new)
    assert root.nsmap["qemu"] == "http://libvirt.org/schemas/domain/qemu/1.0"
    assert root.find("{http://libvirt.org/schemas/domain/qemu/1.0}commandline/"
                     "{http://libvirt.org/schemas/domain/qemu/1.0}arg").get("value") == "-S"
    # a default namespace declared inside metadata stays where it was
    assert b"xmlns:app='http://example.org/app/1'" in new or b'xmlns:app="http://example.org/app/1"' in new


def test_default_namespace_in_metadata_is_kept(tmp_path, host):
    data = doc(between="<metadata><conf xmlns='urn:x'><a>1</a></conf></metadata>")
    out, raw, new = run(tmp_path, host, data)
    kept(out, raw, new)
    assert etree.fromstring(new).find("metadata/{urn:x}conf/{urn:x}a").text == "1"


def test_a_namespaced_filesystem_is_not_owned(tmp_path, host):
    """<x:filesystem> in another namespace is not libvirt's: untouched, a share is added beside it."""
    devices = (f"{DISK}<x:filesystem xmlns:x='urn:x'><x:driver type='virtiofs'/>"
               "<x:target dir='data'/></x:filesystem>")
    out, raw, new = run(tmp_path, host, doc(devices=devices))
    kept(out, raw, new)
    assert b"<x:filesystem xmlns:x='urn:x'>" in new or b'<x:filesystem xmlns:x="urn:x">' in new


# ------------------------------------------------------------------------- size and whitespace

def test_thousands_of_devices(tmp_path, host):
    disks = "".join(
        f"<disk type='file' device='disk'><source file='/img/{i}.qcow2'/><target dev='vd{i}' bus='virtio'/></disk>"
        f"<!-- d{i} -->"
        for i in range(3000)
    )
    nets = "".join(f"<interface type='network'><source network='n{i}'/></interface>" for i in range(2000))
    out, raw, new = run(tmp_path, host, doc(devices=disks + nets))
    kept(out, raw, new)
    assert new.count(b"<disk ") == 3000 and new.count(b"<!-- d") == 3000


def test_whitespace_and_text_outside_the_shares_are_kept_byte_for_byte(tmp_path, host):
    head = (f"<domain type='kvm'>\n  <name>adv</name>\n  <uuid>{UUID}</uuid>\n"
            "  <description>  two  spaces\n\tand a tab  </description>\n  <memory unit='KiB'>524288</memory>\n")
    data = f"{head}  {OS}\n  <devices>\n    {DISK}\n  </devices>\n</domain>\n".replace("'", '"')
    out, raw, new = run(tmp_path, host, data)  # lxml writes attributes in double quotes
    kept(out, raw, new)
    prefix = raw.split(b"<memory")[0]
    assert new.startswith(prefix)  # everything before the (added) memoryBacking is as it was
    assert etree.fromstring(new).findtext("description") == "  two  spaces\n\tand a tab  "
    assert new.endswith(b"</devices>\n</domain>\n")


# ------------------------------------------------------------------------- the file's own style

# double-quoted attributes: lxml writes every attribute so (the lines would differ in that only)
PRETTY = (f'<domain type="kvm">\n  <name>adv</name>\n  <uuid>{UUID}</uuid>\n  <memory unit="KiB">524288</memory>\n'
          '  <os>\n    <type arch="x86_64" machine="q35">hvm</type>\n  </os>\n  <devices>\n'
          '    <disk type="file" device="disk">\n      <source file="/var/lib/libvirt/images/a.qcow2"/>\n'
          '      <target dev="vda" bus="virtio"/>\n    </disk>\n  </devices>\n</domain>\n')
BOM = b"\xef\xbb\xbf"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def only_lines_added(raw: bytes, new: bytes) -> bool:
    """The line diff from ``raw`` to ``new`` is insertions only: no line of the file was rewritten."""
    ops = difflib.SequenceMatcher(None, raw.splitlines(True), new.splitlines(True), autojunk=False).get_opcodes()
    return {opcode[0] for opcode in ops} == {"equal", "insert"}


@pytest.mark.parametrize("raw", [
    pytest.param(crlf(PRETTY), id="crlf"),
    pytest.param(BOM + crlf('<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n' + PRETTY), id="bom-crlf-declaration"),
    pytest.param(BOM + PRETTY.encode(), id="bom-lf-no-declaration"),
    pytest.param(("<?xml version='1.0'?>\n\n" + PRETTY + "\n\n").encode(), id="single-quotes-blank-lines"),
    pytest.param(('<?xml version="1.0" encoding="UTF-8"?>' + PRETTY).encode(), id="declaration-on-the-root-line"),
    pytest.param(("<?xml version = '1.0'\n  encoding = 'iso-8859-1' ?>\n" + PRETTY.replace("adv</name>", "caf\u00e9</name>"))
                 .replace("\n", "\r\n").encode("latin-1"), id="latin1-spelled-lowercase-crlf"),
    pytest.param(PRETTY.rstrip("\n").encode(), id="no-final-newline"),
])
def test_a_patched_file_keeps_its_line_endings_bom_and_declaration(tmp_path, host, raw):
    out, raw, new = run(tmp_path, host, raw)
    kept(out, raw, new)
    body = raw[len(BOM):] if raw.startswith(BOM) else raw
    assert new.startswith(BOM) is raw.startswith(BOM)
    if body.startswith(b"<?xml"):
        declaration = body[:body.index(b"?>") + 2]
        assert new[len(BOM) if raw.startswith(BOM) else 0:].startswith(declaration)  # byte for byte
    else:
        assert b"<?xml" not in new  # none added
    if b"\r\n" in raw:
        assert new.count(b"\n") == new.count(b"\r\n") == new.count(b"\r") > raw.count(b"\r\n")
    else:
        assert b"\r" not in new
    assert new.endswith(b"</domain>" + body[len(body.rstrip()):])  # the whitespace at the end too
    assert only_lines_added(raw, new)  # the diff shows the real change only


@pytest.mark.parametrize("raw", [
    pytest.param(crlf(PRETTY).replace(b"  <os>\r\n", b"  <os>\n"), id="crlf-and-one-lf"),
    pytest.param(crlf(PRETTY).replace(b"  <os>\r\n", b"  <os>\r"), id="crlf-and-one-cr"),
    pytest.param(PRETTY.replace("\n", "\r").encode(), id="cr-only"),
])
def test_a_file_with_mixed_line_endings_is_written_with_lf(tmp_path, host, raw):
    """The documented rule: CR LF is kept only when every line break of the file is CR LF."""
    out, raw, new = run(tmp_path, host, raw)
    kept(out, raw, new)
    assert b"\r" not in new and new.endswith(b"</domain>\n")
    assert only_lines_added(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), new)


def test_a_file_whose_style_needs_no_change_is_not_rewritten(tmp_path, host):
    raw = BOM + crlf('<?xml version="1.0"?>\n' + PRETTY)
    first, _raw, written = run(tmp_path, host, raw)
    second, _raw, again = run(tmp_path, host, written)
    assert second["changed"] is False and again == written


@pytest.mark.parametrize("lose, raw", [
    pytest.param(lambda b: b[len(BOM):], BOM + PRETTY.encode(), id="bom"),
    pytest.param(lambda b: b.replace(b"\r\n", b"\n"), crlf(PRETTY), id="crlf"),
    pytest.param(lambda b: b.replace(b'"1.0"', b"'1.0'"), ('<?xml version="1.0"?>\n' + PRETTY).encode(), id="declaration"),
])
def test_a_serialisation_that_changes_the_file_style_is_refused(monkeypatch, tmp_path, host, lose, raw):
    """The re-parse of the bytes to write checks the style too: a writer that lost it is refused."""
    real = DomainXML.to_bytes
    monkeypatch.setattr(DomainXML, "to_bytes", lambda self: lose(real(self)))
    out, raw, new = run(tmp_path, host, raw)
    refused(out, raw, new, "changes the byte order mark, the XML declaration or the line endings")


# --------------------------------------------------------------------- the check itself can fail

def test_a_lossy_serialisation_is_refused(monkeypatch):
    """If writing back lost a comment, the canonical comparison refuses it."""
    before = DomainXML.from_string(doc(between="<!-- precious -->"))
    after = before.copy()
    _domain_xml.apply_shares(after, [_domain_xml.ShareSpec.from_params({"tag": "data", "source": "/srv/d"})])
    real = DomainXML.to_bytes
    monkeypatch.setattr(DomainXML, "to_bytes", lambda self: real(self).replace(b"<!-- precious -->", b""))
    with pytest.raises(DomainXMLError, match="changes content outside the virtio-fs shares"):
        faithful_bytes(before, after, what="xml_file 'x'")


def test_a_serialisation_that_loses_a_share_is_refused(monkeypatch):
    before = DomainXML.from_string(doc())
    after = before.copy()
    _domain_xml.apply_shares(after, [_domain_xml.ShareSpec.from_params({"tag": "data", "source": "/srv/d"})])
    real = DomainXML.to_bytes
    monkeypatch.setattr(DomainXML, "to_bytes", lambda self: real(self).replace(b"/srv/d", b"/srv/e"))
    with pytest.raises(DomainXMLError, match="changes the patched shares"):
        faithful_bytes(before, after)


def test_unparseable_output_is_refused(monkeypatch):
    before = DomainXML.from_string(doc())
    after = before.copy()
    _domain_xml.apply_shares(after, [_domain_xml.ShareSpec.from_params({"tag": "data", "source": "/srv/d"})])
    monkeypatch.setattr(DomainXML, "to_bytes", lambda self: b"<domain>")
    with pytest.raises(DomainXMLError, match="cannot be written back faithfully"):
        faithful_bytes(before, after)


# ----------------------------------------------------------------------------- the define path

class _Dom:
    def __init__(self, xml: str) -> None:
        self.name, self.uuid, self.xml, self.defines = "adv", UUID, xml, []

    def is_persistent(self):
        return True

    def is_active(self):
        return False

    def inactive_xml(self):
        return self.xml

    def define(self, xml, current_xml):
        self.defines.append(xml)
        self.xml = xml
        return True


class _Conn:
    uri = "fake:///system"

    def __init__(self, dom):
        self.dom = dom

    def version(self):
        return (9, 0, 0)

    def lookup(self, name):
        return self.dom

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_define_is_refused_before_defining(tmp_path, host):
    dom = _Dom(doc(before="<!DOCTYPE domain [<!ENTITY who 'x'>]>\n", between="<description>&who;</description>"))
    host.connect = lambda uri: _Conn(dom)
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("adv", [{"tag": "data", "source": str(tmp_path)}])], Settings(), host)
    assert "DTD entities (who)" in str(err.value) and "nothing was written" in str(err.value)
    assert dom.defines == []


def test_define_keeps_foreign_content(tmp_path, host):
    dom = _Dom(doc(between="<metadata><a:x xmlns:a='urn:a'>1</a:x></metadata><!-- note -->"))
    raw = dom.xml.encode()
    host.connect = lambda uri: _Conn(dom)
    out = converge_domains([DomainRequest("adv", [{"tag": "data", "source": str(tmp_path)}])], Settings(), host)
    assert out.errors == {} and len(dom.defines) == 1
    assert outside(dom.defines[0].encode()) == outside(raw)


# ---------------------------------------------------------------------------------- CDATA

CDATA_PRETTY = PRETTY.replace(
    "  <memory", "  <description><![CDATA[a < b]]></description>\n"
    "  <metadata>\n    <app:note xmlns:app=\"http://example.org/app/1\">x <![CDATA[if (a < b && c) {}]]> y"
    "<![CDATA[]]><![CDATA[ ]] ]]></app:note>\n  </metadata>\n  <memory")


@pytest.mark.parametrize("raw", [
    pytest.param(CDATA_PRETTY.encode(), id="lf"),
    pytest.param(crlf(CDATA_PRETTY), id="crlf"),
    pytest.param(("<?xml version='1.0' encoding='ISO-8859-1'?>\n" + CDATA_PRETTY.replace("[a < b]", "[caf\u00e9 < b]"))
                 .encode("latin-1"), id="latin1"),
])
def test_cdata_sections_are_kept_byte_for_byte_next_to_text(tmp_path, host, raw):
    """Several CDATA sections, mixed with text, an empty one, one holding ']]' (issue: CDATA was
    written back as escaped text): every section comes back as it was, and the line diff is
    the added share only."""
    out, raw, new = run(tmp_path, host, raw, diff=True)
    kept(out, raw, new)
    for section in (b"<description><![CDATA[a < b]]></description>", b"<![CDATA[if (a < b && c) {}]]>",
                    b"<![CDATA[]]>", b"<![CDATA[ ]] ]]>"):
        if section.startswith(b"<description>") and b"ISO-8859-1" in raw:
            section = "<description><![CDATA[caf\u00e9 < b]]></description>".encode("latin-1")
        assert raw.count(section) == 1 and new.count(section) == 1, section
    assert only_lines_added(raw, new)
    assert "<![CDATA[if (a < b && c) {}]]>" in out["diff"]["after"]  # the diff shows the bytes written
    second = converge_file(str(tmp_path / "d.xml"), [{"tag": "data", "source": str(tmp_path / "src")}],
                           Settings(), host)
    assert second["changed"] is False and (tmp_path / "d.xml").read_bytes() == new


def test_a_serialisation_that_turns_cdata_into_text_is_refused():
    """The canonical comparison (C14N 2.0) cannot see CDATA (it is text there): the
    write-back check compares the CDATA sections themselves."""
    before = DomainXML.from_string(doc(between="<description><![CDATA[a < b]]></description>"))
    after = before.copy()
    _domain_xml.apply_shares(after, [_domain_xml.ShareSpec.from_params({"tag": "data", "source": "/srv/d"})])
    after.root.find("description").text = "a < b"  # the same text, escaped: no CDATA section any more
    with pytest.raises(DomainXMLError, match="changes the CDATA sections"):
        faithful_bytes(before, after, what="xml_file 'x'")


# ------------------------------------------------------------------- text after a removed share

@pytest.mark.parametrize("devices,text_before", [
    (f"{DISK}{FS_OLD}stray text{FS_KEEP}", b"</disk>stray text<filesystem"),  # onto the disk's tail
    (f"{FS_OLD} stray &amp; text {DISK}", b"<devices> stray &amp; text <disk"),  # first child: the parent's text
    (f"{DISK}<!-- c -->{FS_OLD}last words", b"<!-- c -->last words<"),  # onto a comment's tail
])
@pytest.mark.parametrize("how", ["absent", "exclusive"])
def test_text_after_a_removed_share_is_kept(tmp_path, host, devices, text_before, how):
    src = tmp_path / "src"
    if how == "absent":
        entries, settings = [{"tag": "old", "state": "absent"}], {}
    else:
        entries, settings = [{"tag": "keep", "source": str(src)}], {"exclusive": True}
    out, raw, new = run(tmp_path, host, doc(devices=devices), entries=entries, **settings)
    assert not isinstance(out, Exception), out
    assert out["changed"] is True and b"<target dir='old'/>" not in new
    assert text_before in new, new


def test_a_cdata_section_after_a_removed_share_is_refused(tmp_path, host):
    devices = f"{DISK}{FS_OLD}<![CDATA[a <b>]]>"
    out, raw, new = run(tmp_path, host, doc(devices=devices), entries=[{"tag": "old", "state": "absent"}])
    assert isinstance(out, DomainXMLError), out
    assert str(out) == (
        "share 'old' is followed by a CDATA section inside <devices> that removing it would turn into plain text; "
        "nothing was written: move the CDATA section into an element that stays (for example <description>) or "
        "remove it, then run again")
    assert new == raw


def test_the_faithful_check_catches_lost_text_after_a_share():
    data = doc(devices=f"{DISK}{FS_OLD}stray text")
    before = DomainXML.from_string(data)
    after = DomainXML.from_string(data)
    fs = after.find_share("old")
    fs.getparent().remove(fs)  # lxml drops the tail with the element
    assert b"stray text" not in after.to_bytes()
    with pytest.raises(DomainXMLError) as err:
        faithful_bytes(before, after, "x.xml")
    assert "re-reading the patched document changes content outside the virtio-fs shares and memoryBacking" in str(err.value)
