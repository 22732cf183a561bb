# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share engine (module_utils/_share) with fake libvirt domains and libvirt's test driver.

The fakes record every define, lock and live call, so the tests assert what was (not) done:
validation of every domain before any is touched, per-domain failures that leave the domain
as it was while the others converge, no define and no lock for domains without a change,
check mode, a diff per domain, and source directories created once per run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import uuid as uuidlib

import pytest
from lxml import etree

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _share
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import LibvirtAdapterError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share import (
    DomainRequest,
    Host,
    Settings,
    ShareValidationError,
    converge_domains,
    converge_file,
)


def domain_xml(name: str, uid: str, extra_devices: str = "") -> str:
    return (
        f"<domain type='kvm'><name>{name}</name><uuid>{uid}</uuid><memory unit='KiB'>524288</memory>"
        f"<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{extra_devices}"
        "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/x.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk></devices></domain>"
    )


class FakeDomain:
    def __init__(self, conn: "FakeConnection", name: str, xml: str, persistent: bool = True,
                 active: bool = False) -> None:
        self.conn = conn
        self.name = name
        self.uuid = etree.fromstring(xml).findtext("uuid")
        self.xml = xml
        self.persistent = persistent
        self.active = active
        self.live = xml
        self.defines: list[str] = []
        self.refuse_define: str | None = None
        self.on_read = None  # called before each inactive_xml() (another writer)

    def is_persistent(self) -> bool:
        return self.persistent

    def is_active(self) -> bool:
        return self.active

    def inactive_xml(self) -> str:
        if self.on_read is not None:
            self.on_read(self)
        if self.conn.gone:
            raise LibvirtAdapterError("cannot read the definition: libvirtd went away")
        return self.xml

    def live_xml(self) -> str:
        return self.live

    def define(self, xml: str, current_xml: str) -> bool:
        if self.refuse_define:
            raise LibvirtAdapterError(self.refuse_define)
        self.defines.append(xml)
        self.xml = etree.tostring(etree.fromstring(xml), encoding="unicode")
        return True

    def attach_live(self, xml: str) -> None:
        self.conn.calls.append(("attach", self.name))

    def detach_live(self, xml: str) -> None:
        self.conn.calls.append(("detach", self.name))


class FakeConnection:
    uri = "fake:///system"

    def __init__(self) -> None:
        self.domains: dict[str, FakeDomain] = {}
        self.calls: list[tuple[str, str]] = []
        self.gone = False

    def add(self, name: str, **kwargs) -> FakeDomain:
        dom = FakeDomain(self, name, domain_xml(name, str(uuidlib.uuid4())), **kwargs)
        self.domains[name] = dom
        return dom

    def version(self):
        return (9, 0, 0)

    def is_alive(self) -> bool:
        return not self.gone

    def lookup(self, name: str) -> FakeDomain:
        for dom in self.domains.values():
            if name in (dom.name, dom.uuid):
                return dom
        raise LibvirtAdapterError(f"domain {name!r} not found at {self.uri!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def conn():
    return FakeConnection()


@pytest.fixture
def host(conn):
    locks: list[str] = []
    attrs: list[tuple] = []

    @contextlib.contextmanager
    def lock(uri, uid, timeout):
        locks.append(uid)
        yield "/run/lock/fake"

    h = Host(connect=lambda uri: conn, lock=lock, set_attributes=lambda *a: attrs.append(a),
             backup_file=lambda path: path + ".bak")
    h.locks = locks  # type: ignore[attr-defined]
    h.attrs = attrs  # type: ignore[attr-defined]
    return h


def tags(dom: FakeDomain) -> list[str]:
    return [fs.find("target").get("dir") for fs in etree.fromstring(dom.xml).iterfind("devices/filesystem")]


def test_every_domain_converges_in_one_run_and_a_rerun_defines_nothing(conn, host, tmp_path):
    doms = [conn.add(f"vm{i}") for i in range(3)]
    requests = [DomainRequest(d.name, [{"tag": f"t{i}", "source": str(tmp_path)}]) for i, d in enumerate(doms)]
    out = converge_domains(requests, Settings(), host)
    assert out.errors == {} and out.changed is True
    res = out.results()
    assert [tags(d) for d in doms] == [["t0"], ["t1"], ["t2"]]
    assert res["vm1"]["actions"][0] == f"add share 't1' (source {tmp_path})"
    assert res["vm1"]["changed"] is True and res["vm1"]["failed"] is False
    assert res["vm1"]["domain"] == {"name": "vm1", "uuid": doms[1].uuid}
    assert res["vm1"]["libvirt_version"] == "9.0.0"
    assert [len(d.defines) for d in doms] == [1, 1, 1]
    assert sorted(host.locks) == sorted(d.uuid for d in doms)

    host.locks.clear()
    again = converge_domains(requests, Settings(), host)
    assert again.changed is False and again.errors == {}
    assert [len(d.defines) for d in doms] == [1, 1, 1]  # nothing defined
    assert host.locks == []  # no lock taken for a domain that needs no change
    assert again.results()["vm2"]["shares"][0]["tag"] == "t2"


def test_one_bad_share_anywhere_fails_before_any_domain_is_touched(conn, host, tmp_path):
    a, b = conn.add("a"), conn.add("b")
    before = (a.xml, b.xml)
    requests = [
        DomainRequest("a", [{"tag": "good", "source": str(tmp_path)}]),
        DomainRequest("b", [{"tag": "bad tag", "source": str(tmp_path)}, {"tag": "x", "source": "relative"}]),
    ]
    with pytest.raises(ShareValidationError) as err:
        converge_domains(requests, Settings(), host)
    msg = str(err.value)
    assert "domain 'b': tag 'bad tag' contains ' '" in msg
    assert msg.endswith("Nothing was changed.")
    assert (a.xml, b.xml) == before and a.defines == [] and b.defines == []


@pytest.mark.parametrize("case, expected", [
    ("missing", "does not exist on this host: create it first or set create_source=true"),
    ("file", "exists but is not a directory: virtio-fs shares a directory"),
    ("binary", "install virtiofsd (or the wrapper) there, or fix the path"),
    ("owner", "of the source directory to create does not exist on this host: create the user first"),
    ("group", "of the source directory to create does not exist on this host: create the group first"),
    ("mode", "of the source directory to create is neither octal"),
])
def test_host_problems_of_a_share_are_found_before_anything_changes(conn, host, tmp_path, case, expected):
    """Sources and binaries are checked on the host first: nothing is created or defined on a refusal."""
    a = conn.add("a")
    before = a.xml
    (tmp_path / "file").write_text("not a directory")
    share = {"tag": "data", "source": str(tmp_path / ("file" if case == "file" else "missing"))}
    if case == "binary":
        share.update(source=str(tmp_path), binary_path=str(tmp_path / "no-virtiofsd"))
    if case in ("owner", "group", "mode"):
        share.update(create_source=True, **{case: {"owner": "no-such-user-x", "group": "no-such-group-x"}.get(case, "rwx")})
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("a", [share])], Settings(), host)
    assert expected in str(err.value)
    assert str(err.value).endswith("Nothing was changed.")
    assert a.xml == before and a.defines == []
    assert sorted(os.listdir(tmp_path)) == ["file"]  # no source directory was created


@pytest.mark.parametrize("case, expected", [
    ("unknown", "domain 'ghost': domain 'ghost' not found"),
    ("transient", "domain 'b': domain 'b' is transient (it has no persistent definition)"),
    ("twice", "domain 'a': the domain is listed twice"),
    ("uuid", "this is the same domain as 'a'"),
    ("9p", "domain 'b': "),
    ("feature", "domain 'b': share 'new': feature 'readonly' (<filesystem><readonly/>) needs libvirt >= 11.0.0"),
])
def test_domain_level_problems_are_found_before_anything_changes(conn, host, tmp_path, case, expected):
    a = conn.add("a")
    b = conn.add("b", persistent=(case != "transient"))
    if case == "9p":
        b.xml = domain_xml("b", b.uuid, "<filesystem type='mount'><source dir='/srv'/><target dir='new'/></filesystem>")
    share = {"tag": "new", "source": str(tmp_path), "readonly": case == "feature"}
    second = {"unknown": "ghost", "twice": "a", "uuid": a.uuid}.get(case, "b")
    requests = [DomainRequest("a", [dict(share, readonly=False)]), DomainRequest(second, [share])]
    with pytest.raises(ShareValidationError) as err:
        converge_domains(requests, Settings(), host)
    assert expected in str(err.value)
    assert a.defines == [] and b.defines == []


def test_a_libvirt_failure_on_one_domain_leaves_it_alone_and_the_others_converge(conn, host, tmp_path):
    a, b, c = conn.add("a"), conn.add("b"), conn.add("c")
    b.refuse_define = "XML error: unsupported configuration"
    old_b = b.xml
    new_dir = tmp_path / "new" / "for-b"
    requests = [
        DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}]),
        DomainRequest("b", [{"tag": "t", "source": str(new_dir), "create_source": True}]),
        DomainRequest("c", [{"tag": "t", "source": str(tmp_path)}]),
    ]
    out = converge_domains(requests, Settings(), host)
    assert out.errors == {"b": "XML error: unsupported configuration"}
    res = out.results()
    assert res["b"]["failed"] is True and res["b"]["msg"] == "XML error: unsupported configuration"
    assert res["b"]["changed"] is False
    assert b.xml == old_b
    assert not (tmp_path / "new").exists()  # the directory created for b is removed again
    assert tags(a) == ["t"] and tags(c) == ["t"]
    assert res["a"]["failed"] is False and res["c"]["changed"] is True
    assert out.changed is True


def test_libvirtd_going_away_between_domains(conn, host, tmp_path):
    a, b = conn.add("a"), conn.add("b")
    requests = [DomainRequest(n, [{"tag": "t", "source": str(tmp_path)}]) for n in ("a", "b")]
    # libvirtd goes away after the validation phase, once domain a is converged

    def active_then_vanish():
        conn.gone = True
        return False

    a.is_active = active_then_vanish
    out = converge_domains(requests, Settings(), host)
    assert list(out.errors) == ["b"] and "libvirtd went away" in out.errors["b"]
    assert tags(a) == ["t"] and tags(b) == []
    conn.gone = False
    del a.is_active  # libvirtd is back
    again = converge_domains(requests, Settings(), host)
    assert again.errors == {} and tags(b) == ["t"]
    assert again.results()["a"]["changed"] is False


def test_libvirtd_gone_mid_run_says_per_domain_what_was_done(conn, host, tmp_path):
    """a converges; b's define goes through, then libvirtd goes away; c is not defined at all."""
    a, b, c = conn.add("a"), conn.add("b"), conn.add("c")
    old_c = c.xml
    define_b = b.define

    def define_then_vanish(xml, current_xml):
        stored = define_b(xml, current_xml)
        conn.gone = True
        return stored

    b.define = define_then_vanish
    p = share_params(domains=[{"name": n, "shares": [{"tag": "t", "source": str(tmp_path)}]} for n in "abc"])
    result, _warnings, failed = _share.run_share(p, False, False, host, lambda: None)
    assert failed is True
    lost = "libvirt connection lost (cannot read the definition: libvirtd went away): "
    again = ". Run again once libvirtd is reachable"
    assert result["msg"] == (
        "2 of 3 domains failed ('b', 'c'); the other 1 converged ('a'): "
        f"domain 'b': {lost}its new definition was defined but is unverified (it was not read back){again}; "
        f"domain 'c': {lost}nothing was defined for it{again}"
    )
    doms = result["domains"]
    assert [(doms[n]["failed"], doms[n]["changed"]) for n in "abc"] == [(False, True), (True, True), (True, False)]
    assert doms["c"]["msg"] == f"{lost}nothing was defined for it{again}"
    assert tags(a) == ["t"] and tags(b) == ["t"] and c.xml == old_c and c.defines == []


@pytest.mark.parametrize("step, expected", [
    ("define", "its new definition was being defined when the connection broke, so whether it is in place is "
               "unknown (virsh dumpxml --inactive tells)"),
    ("live", "its new definition is in place and verified; the running domain was not compared with it "
             "(live attach/detach and restart_required are unknown)"),
    ("live-unchanged", "its definition needed no change (nothing was defined); the running domain was not "
                       "compared with it (live attach/detach and restart_required are unknown)"),
])
def test_libvirtd_gone_during_define_or_live_step(conn, host, tmp_path, step, expected):
    a = conn.add("a", active=True)
    shares = [{"tag": "t", "source": str(tmp_path)}]
    if step == "live-unchanged":
        converge_domains([DomainRequest("a", shares)], Settings(), host)
        assert len(a.defines) == 1

    def define_fails(xml, current_xml):
        conn.gone = True
        raise LibvirtAdapterError("the connection broke while defining domain 'a': End of file")

    def live_fails():
        conn.gone = True
        raise LibvirtAdapterError("cannot read the live XML of domain 'a': client socket is closed")

    if step == "define":
        a.define = define_fails
    else:
        a.live_xml = live_fails
    out = converge_domains([DomainRequest("a", shares)], Settings(), host)
    msg = out.errors["a"]
    assert msg.startswith("libvirt connection lost (")
    assert msg.endswith(f"): {expected}. Run again once libvirtd is reachable")
    assert out.results()["a"]["changed"] is (step == "live")


def test_a_definition_that_keeps_changing_is_not_defined(conn, host, tmp_path):
    a = conn.add("a")
    reads = iter(range(1000))

    def another_writer(dom):  # every read sees a new definition
        dom.xml = domain_xml("a", dom.uuid).replace("<devices>", f"<description>v{next(reads)}</description><devices>")

    a.on_read = another_writer
    out = converge_domains([DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}])], Settings(), host)
    assert "kept changing while this run tried to patch it" in out.errors["a"]
    assert out.errors["a"].endswith("nothing was defined, run again")
    assert a.defines == []


def test_a_definition_libvirt_stores_differently_is_reported(conn, host, tmp_path):
    a = conn.add("a")
    before = a.xml

    def define_drops_the_share(xml, current_xml):
        a.defines.append(xml)  # libvirt accepted it but kept the old definition
        return True

    a.define = define_drops_the_share
    out = converge_domains([DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}])], Settings(), host)
    assert "did not store the shares as defined for domain 'a'" in out.errors["a"]
    assert "share 't' is missing from the definition libvirt stored" in out.errors["a"]
    assert a.xml == before


def test_another_writer_between_validation_and_define_is_kept(conn, host, tmp_path):
    a = conn.add("a")
    reads = []

    def other_writer(dom):
        reads.append(1)
        if len(reads) == 2:  # right after the validation phase read it
            root = etree.fromstring(dom.xml)
            etree.SubElement(root, "description").text = "set by someone else"
            dom.xml = etree.tostring(root, encoding="unicode")

    a.on_read = other_writer
    out = converge_domains([DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}])], Settings(), host)
    assert out.errors == {}
    root = etree.fromstring(a.xml)
    assert root.findtext("description") == "set by someone else"
    assert tags(a) == ["t"] and len(a.defines) == 1


def test_check_mode_predicts_without_touching_and_diff_per_domain(conn, host, tmp_path):
    a, b = conn.add("a"), conn.add("b")
    a.xml = domain_xml("a", a.uuid)
    src = tmp_path / "to-create"
    requests = [
        DomainRequest("a", [{"tag": "t", "source": str(src), "create_source": True}]),
        DomainRequest("b", [{"tag": "t", "source": str(src), "create_source": True}]),
    ]
    out = converge_domains(requests, Settings(check_mode=True, diff=True), host)
    res = out.results()
    assert out.changed is True and a.defines == [] and b.defines == [] and host.locks == []
    assert not src.exists()
    assert f"create source directory {src}" in res["a"]["actions"]
    assert f"create source directory {src}" not in res["b"]["actions"]  # created once per run
    assert "<filesystem" not in res["a"]["diff"]["before"] and "<filesystem" in res["a"]["diff"]["after"]
    assert res["b"]["diff"]["after_header"] == "b (inactive definition)"

    real = converge_domains(requests, Settings(diff=True), host)
    rres = real.results()
    assert src.is_dir() and host.attrs == [(str(src), None, None, None)]
    assert rres["a"]["actions"] == res["a"]["actions"]
    assert rres["a"]["diff"] == res["a"]["diff"]


def test_running_domain_live_attach_and_restart_reasons(conn, host, tmp_path):
    a = conn.add("a", active=True)
    shared = ("<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>")
    a.xml = a.live = a.xml.replace("<os>", shared + "<os>")
    out = converge_domains([DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}])],
                           Settings(live="auto", changed_binaries=["/x"]), host)
    res = out.results()["a"]
    assert conn.calls == [("attach", "a")]
    assert res["actions"][-1] == "attach share 't' to the running domain"
    b = conn.add("b", active=True)
    out = converge_domains([DomainRequest("b", [{"tag": "t", "source": str(tmp_path)}])], Settings(), host)
    res = out.results()["b"]
    assert res["restart_required"] is True
    assert "the running domain has no shared memory yet: memoryBacking changes need a full stop and start" in (
        res["restart_reasons"])
    assert "share 't' is not attached to the running domain (live=false)" in res["restart_reasons"]


def test_backup_written_before_define(conn, host, tmp_path):
    a = conn.add("a")
    old = a.xml
    out = converge_domains([DomainRequest("a", [{"tag": "t", "source": str(tmp_path)}])],
                           Settings(backup=True, backup_dir=str(tmp_path / "bk")), host)
    path = out.results()["a"]["backup_file"]
    assert os.path.dirname(path) == str(tmp_path / "bk") and open(path).read() == old
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_converge_file(host, tmp_path):
    path = tmp_path / "d.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    res = converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(), host)
    assert res["changed"] is True and "filesystem" in path.read_text()
    assert sorted(os.listdir(tmp_path)) == ["d.xml"]  # no temporary file left
    again = converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(), host)
    assert again["changed"] is False
    with pytest.raises(_share.ShareError, match="live cannot be used with xml_file"):
        converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(live="auto"), host)


def test_with_libvirts_test_driver(tmp_path):
    """libvirt-python's own test:///default driver: a real define, XMLDesc and lookup."""
    import libvirt  # the dev venv has libvirt-python: a missing one fails, never skips
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import Connection
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import domain_lock

    host = Host(connect=Connection, lock=domain_lock, set_attributes=lambda *a: None, backup_file=str)
    settings = Settings(uri="test:///default")
    with Connection("test:///default") as c:
        assert c.lookup("test").is_persistent()
    shares = [{"tag": "data", "source": str(tmp_path), "cache": "always"}]
    out = converge_domains([DomainRequest("test", shares)], settings, host)
    assert out.errors == {}, out.errors
    res = out.results()["test"]
    assert res["changed"] is True and res["defined_with_validation"] in (True, False)
    assert [s["tag"] for s in res["shares"]] == ["data"] and res["shares"][0]["cache"] == "always"
    conn = libvirt.open("test:///default")
    xml = conn.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<target dir='data'/>" in xml
    conn.close()
    with pytest.raises(ShareValidationError, match="domain 'nope' not found at .*: give the name or UUID of an existing domain"):
        converge_domains([DomainRequest("nope", shares)], settings, host)


# --- the share module's run (run_share, single_share) --------------------------------------------

def share_params(**overrides):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import SPEC_OPTIONS

    p = {k: v for k, v in dataclasses.asdict(Settings()).items() if k not in ("check_mode", "diff")}
    p.update({k: None for k in SPEC_OPTIONS})
    p.update(domain=None, domains=None, xml_file=None, tag=None, state="present", shares=None)
    p.update(overrides)
    return p


def test_single_share_refuses_top_level_options_with_a_list():
    p = share_params(shares=[{"tag": "a"}], state="absent")
    with pytest.raises(_share.ShareError, match="single-share options state cannot be combined with shares"):
        _share.single_share(p)
    assert _share.single_share(share_params(tag="a"))[0]["tag"] == "a"


def test_run_share_one_domain_and_many(conn, host, tmp_path):
    vm = conn.add("vm0")
    needed = []
    result, warnings, failed = _share.run_share(
        share_params(domain="vm0", tag="t0", source=str(tmp_path)), False, True, host, lambda: needed.append(1)
    )
    assert (failed, needed, warnings) == (False, [1], [])
    assert result["changed"] is True and "failed" not in result and tags(vm) == ["t0"]

    conn.add("vm1").refuse_define = "XML error: nope"
    p = share_params(domains=[{"name": n, "shares": [{"tag": "t1", "source": str(tmp_path)}]} for n in ("vm0", "vm1")])
    result, warnings, failed = _share.run_share(p, False, True, host, lambda: None)
    assert failed is True
    assert result["msg"].startswith("1 of 2 domains failed ('vm1'); the other 1 converged ('vm0'): domain 'vm1': ")
    assert result["domains"]["vm0"]["failed"] is False and result["domains"]["vm1"]["failed"] is True
    assert result["changed"] is True and isinstance(result["diff"], list)


def test_run_share_xml_file_needs_no_libvirt(tmp_path, host):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))

    def no_libvirt():
        raise AssertionError("libvirt is not needed for xml_file")

    result, warnings, failed = _share.run_share(
        share_params(xml_file=str(path), tag="t", source=str(tmp_path)), False, False, host, no_libvirt
    )
    assert failed is False and result["changed"] is True and "warnings" not in result
    doc = etree.fromstring(path.read_bytes())
    assert [fs.find("target").get("dir") for fs in doc.iterfind("devices/filesystem")] == ["t"]


OLD_SHARE = "<filesystem type='mount'><driver type='virtiofs'/><source dir='/srv/old'/><target dir='old'/></filesystem>"


def _stored_without_memory_backing(root):
    for el in root.findall("memoryBacking"):
        root.remove(el)


def _stored_with_another_source(root):
    root.find("devices/filesystem/source").set("dir", "/srv/other")


def _stored_with_the_old_share_kept(root):
    root.find("devices").append(etree.fromstring(OLD_SHARE))


@pytest.mark.parametrize("extra, share, settings, mutate, expected", [
    ("", {"tag": "t"}, {}, _stored_with_another_source,
     "libvirt stored share 't' differently: source wanted "),
    ("", {"tag": "t"}, {}, _stored_without_memory_backing,
     "the stored definition has no shared memory backing"),
    (OLD_SHARE, {"tag": "t"}, {"exclusive": True}, _stored_with_the_old_share_kept,
     "shares not listed are still defined: 'old'"),
    (OLD_SHARE, {"tag": "old", "state": "absent"}, {}, None,
     "share 'old' is still in the definition after removing it"),
    ("", {"tag": "t"}, {}, None, "share 't' is missing from the definition libvirt stored"),
])
def test_each_difference_of_the_stored_definition_is_named(conn, host, tmp_path, extra, share, settings, mutate, expected):
    """libvirt accepts the define but stores something else: each difference is in the domain's error."""
    a = conn.add("a")
    a.xml = domain_xml("a", a.uuid, extra)
    before = a.xml

    def define_stores_something_else(xml, current_xml):
        a.defines.append(xml)
        if mutate is None:  # libvirt kept the old definition
            return True
        root = etree.fromstring(xml)
        mutate(root)
        a.xml = etree.tostring(root, encoding="unicode")
        return True

    a.define = define_stores_something_else
    if share.get("state") != "absent":
        share = dict(share, source=str(tmp_path))
    out = converge_domains([DomainRequest("a", [share])], Settings(**settings), host)
    assert len(a.defines) == 1
    assert "did not store the shares as defined for domain 'a'" in out.errors["a"]
    assert expected in out.errors["a"]
    if mutate is None:
        assert a.xml == before  # the definition is as it was


def test_a_binary_path_others_can_change_is_refused(conn, host, tmp_path):
    """libvirt runs binary_path as root: one that another user can replace is refused before anything changes."""
    a = conn.add("a")
    before = a.xml
    binary = tmp_path / "virtiofsd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o777)
    share = {"tag": "data", "source": str(tmp_path), "binary_path": str(binary)}
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("a", [share])], Settings(), host)
    msg = str(err.value)
    assert f"share 'data': binary_path {binary} can be changed by users other than root" in msg
    assert f"is writable by group and others (uid {os.getuid()}, mode 0777)" in msg
    assert f"Fix: chmod go-w {binary}" in msg
    assert a.xml == before and a.defines == []


def test_an_xml_file_another_run_is_writing_is_not_changed(host, tmp_path):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import path_lock

    path = tmp_path / "d.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    with path_lock(str(path)):  # another run holds it
        with pytest.raises(_share.ShareError) as err:
            converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(lock_timeout=0.2), host)
    msg = str(err.value)
    assert msg.startswith("another run holds the lock ") and f"for {path} for more than 0 s" in msg
    assert msg.endswith(f"; {path} was not changed")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d.xml"]


# --- validation gaps: each refusal comes before anything is written, in check mode too -----------

@pytest.mark.parametrize("check_mode", [True, False])
def test_xml_file_source_below_a_regular_file_fails_the_same_in_check_mode(host, tmp_path, check_mode):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    (tmp_path / "plain").write_text("a file")
    share = {"tag": "t", "source": str(tmp_path / "plain" / "sub" / "deeper"), "create_source": True}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    plain = str(tmp_path / "plain")
    assert str(err.value) == (
        f"share 't': source {share['source']!r} does not exist and cannot be created: {plain!r} is a regular file, "
        f"not a directory; choose a source below a directory, or replace {plain!r} with a directory"
    )
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["plain", "vm.xml"]
    assert host.attrs == []


@pytest.mark.parametrize("check_mode", [True, False])
@pytest.mark.parametrize("below", ["plain", "gone"])
def test_a_source_below_a_file_without_create_source_names_the_file_not_create_source(host, conn, tmp_path, check_mode, below):
    """create_source=false: "create it first or set create_source=true" cannot work below a regular
    file (or a dangling link), so the message is the one of create_source=true: the component and the fix."""
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    component = str(tmp_path / below)
    share = {"tag": "t", "source": component + "/sub", "create_source": False}
    what = "a regular file, not a directory" if below == "plain" else "a symbolic link that does not lead to a directory"
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    assert str(err.value) == (
        f"share 't': source {share['source']!r} does not exist and cannot be created: {component!r} is {what}; "
        f"choose a source below a directory, or replace {component!r} with a directory"
    )
    assert "create_source" not in str(err.value)
    a = conn.add("a")
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("a", [share])], Settings(check_mode=check_mode), host)
    assert f"{component!r} is {what}" in str(err.value) and "create_source" not in str(err.value)
    assert path.read_bytes() == before and a.defines == [] and host.attrs == []
    assert sorted(os.listdir(tmp_path)) == ["gone", "plain", "vm.xml"]


def test_domain_source_below_a_dangling_symlink_is_refused_before_any_define(conn, host, tmp_path):
    a = conn.add("a")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    share = {"tag": "t", "source": str(tmp_path / "gone" / "sub"), "create_source": True}
    for check_mode in (True, False):
        with pytest.raises(ShareValidationError) as err:
            converge_domains([DomainRequest("a", [share])], Settings(check_mode=check_mode), host)
        assert "is a symbolic link that does not lead to a directory; choose a source below a directory" in str(err.value)
    assert a.defines == [] and sorted(os.listdir(tmp_path)) == ["gone"]


@pytest.mark.parametrize("check_mode", [True, False])
@pytest.mark.parametrize("create_source", [True, False])
def test_a_source_that_is_a_dangling_symlink_is_refused_naming_the_link(host, tmp_path, check_mode, create_source):
    """os.makedirs cannot create a directory where a dangling link is: neither "create it first or set
    create_source=true" nor (in check mode) "create source directory" would be true."""
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    share = {"tag": "t", "source": str(link), "create_source": create_source}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    assert str(err.value) == (
        f"share 't': source {str(link)!r} is a symbolic link that does not lead to a directory: point it at "
        "a directory, or remove it (create_source=true then creates the directory)"
    )
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["gone", "vm.xml"] and host.attrs == []


@pytest.mark.parametrize("check_mode", [True, False])
def test_xml_file_fifo_is_refused_without_blocking(host, tmp_path, check_mode):
    fifo = tmp_path / "vm.xml"
    os.mkfifo(fifo)
    with pytest.raises(_share.DomainXMLError, match=r"is a FIFO \(named pipe\), not a regular file"):
        converge_file(str(fifo), [{"tag": "t", "source": str(tmp_path)}], Settings(check_mode=check_mode), host)


@pytest.mark.parametrize("check_mode", [True, False])
def test_xml_file_of_an_lxc_domain_is_refused_and_unchanged(host, tmp_path, check_mode):
    path = tmp_path / "ct.xml"
    path.write_text(domain_xml("ct", str(uuidlib.uuid4())).replace("type='kvm'", "type='lxc'", 1))
    before = path.read_bytes()
    with pytest.raises(_share.DomainXMLError) as err:
        converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(check_mode=check_mode), host)
    assert str(err.value).startswith(
        f"xml_file {str(path)!r} is a <domain type='lxc'>, but virtio-fs shares need a QEMU domain"
    )
    assert path.read_bytes() == before


def test_defined_lxc_domain_is_refused_before_any_define(conn, host, tmp_path):
    a, ct = conn.add("a"), conn.add("ct")
    ct.xml = ct.xml.replace("type='kvm'", "type='lxc'", 1)
    requests = [DomainRequest(n, [{"tag": "t", "source": str(tmp_path)}]) for n in ("a", "ct")]
    with pytest.raises(ShareValidationError) as err:
        converge_domains(requests, Settings(), host)
    assert "domain 'ct': domain 'ct' is a <domain type='lxc'>, but virtio-fs shares need a QEMU domain" in str(err.value)
    assert a.defines == [] and ct.defines == []


@pytest.mark.parametrize("timeout", [-1, -0.5])
def test_negative_lock_timeout_is_refused(conn, host, tmp_path, timeout):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    share = [{"tag": "t", "source": str(tmp_path)}]
    for call in (lambda: converge_file(str(path), share, Settings(lock_timeout=timeout), host),
                 lambda: converge_domains([DomainRequest("a", share)], Settings(lock_timeout=timeout), host)):
        with pytest.raises(_share.ShareError) as err:
            call()
        assert f"lock_timeout must be a number of seconds >= 0 (0: fail at once when another run holds the lock), " \
               f"got {timeout!r}; there is no 'wait forever'" in str(err.value)
    assert path.read_bytes() == before
    # 0 is valid: one try
    assert converge_file(str(path), share, Settings(lock_timeout=0), host)["changed"] is True


@pytest.mark.parametrize("mode, expected", [
    (755, "mode 755 of the source directory to create is the decimal number 755 (octal 1363), not the octal mode "
          "0755: quote it, mode: '0755'"),
    (644, "is the decimal number 644 (octal 1204), not the octal mode 0644"),
    (0o10000, "mode 4096 of the source directory to create is outside 0 to 0o7777"),
    (-1, "mode -1 of the source directory to create is outside 0 to 0o7777"),
    ("7777", "mode '7777' of the source directory to create sets the setuid bit (0o4000)"),
    (0o4755, "mode 2541 of the source directory to create sets the setuid bit (0o4000)"),
    ("17777", "of the source directory to create is neither octal"),
    (True, "mode True of the source directory to create is neither octal"),
])
@pytest.mark.parametrize("check_mode", [True, False])
def test_invalid_mode_is_refused_before_anything_is_created(host, tmp_path, mode, expected, check_mode):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    before = path.read_bytes()
    share = {"tag": "t", "source": str(tmp_path / "new" / "src"), "create_source": True, "mode": mode}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    assert expected in str(err.value)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["vm.xml"] and host.attrs == []


@pytest.mark.parametrize("mode", [0o755, 493, 0o2775, 0o1777, "0755", "2775", "u=rwx,g=rx,o=", 0o700, 400])
def test_valid_modes_are_passed_on_as_given(host, tmp_path, mode):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    src = tmp_path / "src"
    converge_file(str(path), [{"tag": "t", "source": str(src), "create_source": True, "mode": mode}], Settings(), host)
    assert src.is_dir() and host.attrs == [(str(src), None, None, mode)]


def test_source_with_trailing_slash_is_the_same_share_in_a_file(host, tmp_path):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    first = converge_file(str(path), [{"tag": "t", "source": str(tmp_path) + "/"}], Settings(), host)
    assert first["changed"] is True and first["shares"][0]["source"] == str(tmp_path)
    written = path.read_bytes()
    for again in (str(tmp_path), str(tmp_path) + "/", str(tmp_path) + "/.", "/" + str(tmp_path)):
        res = converge_file(str(path), [{"tag": "t", "source": again}], Settings(), host)
        assert res["changed"] is False and res["actions"] == [], again
    assert path.read_bytes() == written


def _styled_file(tmp_path):
    """A file with a BOM, CR LF line endings and a double-quoted declaration (written by Windows tools)."""
    path = tmp_path / "vm.xml"
    pretty = (f'<domain type="kvm">\n  <name>f</name>\n  <uuid>{uuidlib.uuid4()}</uuid>\n'
              '  <memory unit="KiB">524288</memory>\n  <os>\n    <type arch="x86_64" machine="q35">hvm</type>\n'
              '  </os>\n  <devices>\n    <disk type="file" device="disk">\n'
              '      <source file="/var/lib/libvirt/images/x.qcow2"/>\n      <target dev="vda" bus="virtio"/>\n'
              '    </disk>\n  </devices>\n</domain>\n')
    text = ('<?xml version="1.0" encoding="utf-8"?>\n<!-- kept -->\n' + pretty).replace("\n", "\r\n")
    raw = b"\xef\xbb\xbf" + text.encode()
    path.write_bytes(raw)
    return path, raw


@pytest.mark.parametrize("check_mode", [True, False])
def test_xml_file_diff_is_the_bytes_on_disk_and_the_bytes_written(host, tmp_path, check_mode):
    path, raw = _styled_file(tmp_path)
    res = converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(check_mode=check_mode, diff=True), host)
    assert res["diff"]["before"] == raw.decode("utf-8")  # BOM, CRLF, declaration and quotes as on disk
    assert res["diff"]["before"].startswith("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n")
    after = res["diff"]["after"]
    # the file is written back in its own style: the same BOM, declaration text and CR LF line endings
    assert "<filesystem" in after and after.startswith("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<!-- kept -->\r\n")
    assert after.count("\n") == after.count("\r\n") > raw.count(b"\r\n")
    # so the diff shows the real change only: lines are added, none of the file's lines is rewritten
    ops = difflib.SequenceMatcher(None, res["diff"]["before"].splitlines(True), after.splitlines(True)).get_opcodes()
    assert {opcode[0] for opcode in ops} == {"equal", "insert"}
    added = "".join(line for op, _a, _b, c, d in ops if op == "insert" for line in after.splitlines(True)[c:d])
    assert "<filesystem" in added and "<memoryBacking>" in added
    if check_mode:
        assert path.read_bytes() == raw
    else:
        assert path.read_bytes().decode("utf-8") == after  # the diff's after is what was written
    # nothing to change: after == before, the file's own text
    if not check_mode:
        again = converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(diff=True), host)
        assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"] == after


def test_xml_file_diff_headers_name_the_file_the_same_in_check_mode(host, tmp_path):
    """The diff of an xml_file is headed by its path (not "<domain> (inactive definition)"), and
    check mode returns the very diff the real run then makes."""
    path, _raw = _styled_file(tmp_path)
    link = tmp_path / "link.xml"
    link.symlink_to(path.name)
    share = [{"tag": "t", "source": str(tmp_path)}]
    predicted = converge_file(str(link), share, Settings(check_mode=True, diff=True), host)
    real = converge_file(str(link), share, Settings(diff=True), host)
    assert predicted["diff"] == real["diff"]
    assert real["diff"]["before_header"] == real["diff"]["after_header"] == os.path.realpath(path)
    assert real["diff"]["before"] != real["diff"]["after"]


# --- share source safety: the same refusals and warnings for domains and xml_file, in check mode too ----

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _vm(tmp_path):
    path = tmp_path / "vm.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    return path, path.read_bytes()


@pytest.mark.parametrize("check_mode", [True, False])
@pytest.mark.parametrize("source", ["/", "//", "/./", "link-to-root"])
def test_the_host_root_as_source_is_refused(conn, host, tmp_path, check_mode, source):
    path, before = _vm(tmp_path)
    if source == "link-to-root":
        (tmp_path / "all").symlink_to("/")
        source = str(tmp_path / "all")
    share = {"tag": "t", "source": source}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    msg = str(err.value)
    assert msg.startswith("share 't': source ") and "is the root of the host file system" in msg
    assert "the guest would get the whole host file system" in msg and "share a dedicated directory instead" in msg
    a = conn.add("a")
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("a", [share])], Settings(check_mode=check_mode), host)
    assert "is the root of the host file system" in str(err.value)
    assert path.read_bytes() == before and a.defines == [] and host.locks == []


def test_removing_a_share_whose_source_is_the_root_is_not_refused(conn, host, tmp_path):
    path, _before = _vm(tmp_path)
    out = converge_file(str(path), [{"tag": "t", "state": "absent", "source": "/"}], Settings(), host)
    assert out["changed"] is False and "warnings" not in out


@needs_root
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_symlink_another_user_owns_is_refused_before_anything_changes(conn, host, tmp_path, check_mode):
    path, before = _vm(tmp_path)
    os.chmod(tmp_path, 0o755)
    (tmp_path / "real").mkdir()
    link = tmp_path / "current"
    link.symlink_to("real")
    os.lchown(link, NOBODY, NOBODY)
    share = {"tag": "t", "source": str(link)}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    assert str(err.value) == (
        f"share 't': source {str(link)!r} goes through the symbolic link {link} -> real, which is owned by uid "
        f"{NOBODY}, not root: whoever can change it chooses the directory the guest gets (virtiofsd, running as "
        f"root, follows it when the domain starts); write the resolved path {str(tmp_path / 'real')!r} as the "
        "source, or make the link root's in a directory only root can change"
    )
    a = conn.add("a")
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("a", [share])], Settings(check_mode=check_mode), host)
    assert "whoever can change it chooses the directory the guest gets" in str(err.value)
    assert path.read_bytes() == before and a.defines == [] and host.locks == []


@needs_root
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_safe_symlink_source_is_a_warning_and_the_share_is_added(conn, host, tmp_path, check_mode):
    path, before = _vm(tmp_path)
    os.chmod(tmp_path, 0o755)
    (tmp_path / "real").mkdir()
    link = tmp_path / "current"
    link.symlink_to("real")
    share = {"tag": "t", "source": str(link)}
    out = converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    real = str(tmp_path / "real")
    assert out["changed"] is True and len(out["warnings"]) == 1
    assert out["warnings"][0].startswith(f"share 't': source {str(link)!r} goes through the symbolic link {link} -> real")
    assert f"so the guest gets {real!r} now" in out["warnings"][0]
    assert (path.read_bytes() == before) is check_mode
    a = conn.add("a")
    b = conn.add("b")
    outcome = converge_domains([DomainRequest("a", [share]), DomainRequest("b", [{"tag": "u", "source": real}])],
                               Settings(check_mode=check_mode), host)
    results = outcome.results()
    assert results["a"]["warnings"] == out["warnings"] and "warnings" not in results["b"]
    assert len(a.defines) == (0 if check_mode else 1) and len(b.defines) == (0 if check_mode else 1)


@needs_root
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_parent_other_users_can_write_is_a_warning_also_for_a_source_to_create(conn, host, tmp_path, check_mode):
    path, before = _vm(tmp_path)
    os.chmod(tmp_path, 0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    new = shared / "new"
    share = {"tag": "t", "source": str(new), "create_source": True}
    out = converge_file(str(path), [share], Settings(check_mode=check_mode), host)
    assert out["changed"] is True and len(out["warnings"]) == 1
    msg = out["warnings"][0]
    assert msg.startswith(f"share 't': source {str(new)!r} can be replaced by a user other than root before the "
                          f"domain starts: {shared} is writable by group and others (uid 0, mode 0777)")
    assert f"Fix: chmod go-w {shared}; or share a directory whose parents only root can change" in msg
    assert new.is_dir() is not check_mode
    assert f"create source directory {new}" in out["actions"]
    # the run of a domain reports the same, once per domain, with the domain's name in a multi-domain run
    conn.add("a")
    p = dict(uri="fake:///", xml_file=None, domain=None, domains=[{"name": "a", "shares": [share]}], shares=None,
             tag=None, state="present", exclusive=False, memory_backing="auto", live="false", backup=False,
             backup_dir="/nonexistent", pending_binaries=[], changed_binaries=[], lock_timeout=1.0,
             create_source=False, owner=None, group=None, mode=None,
             **{k: None for k in _share.SPEC_OPTIONS})
    result, warnings, failed = _share.run_share(p, check_mode, False, host, lambda: None)
    assert failed is False and warnings == [f"domain 'a': {msg}"]


@needs_root
@pytest.mark.parametrize("check_mode", [True, False])
def test_every_unsafe_source_of_a_share_list_is_reported_at_once(conn, host, tmp_path, check_mode):
    path, before = _vm(tmp_path)
    os.chmod(tmp_path, 0o755)
    (tmp_path / "real").mkdir()
    link = tmp_path / "current"
    link.symlink_to("real")
    os.lchown(link, NOBODY, NOBODY)
    shares = [{"tag": "a", "source": "/"}, {"tag": "ok", "source": str(tmp_path / "real")},
              {"tag": "b", "source": str(link)}, {"tag": "c", "source": "/proc/self/cwd"}]
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), shares, Settings(check_mode=check_mode), host)
    msg = str(err.value)
    parts = msg.split("; share '")
    assert len(parts) == 3, msg
    assert parts[0].startswith("share 'a': source '/' is the root of the host file system")
    assert parts[1].startswith(f"b': source {str(link)!r} goes through the symbolic link")
    assert parts[2].startswith("c': source '/proc/self/cwd' is below /proc: procfs is not a directory tree to share")
    d = conn.add("d")
    with pytest.raises(ShareValidationError) as err:
        converge_domains([DomainRequest("d", shares)], Settings(check_mode=check_mode), host)
    for fragment in ("share 'a': source '/' is the root", "share 'b': source", "share 'c': source '/proc/self/cwd'"):
        assert fragment in str(err.value)
    assert path.read_bytes() == before and d.defines == [] and host.locks == []


@pytest.mark.parametrize("create_source", [True, False])
def test_a_source_below_proc_is_refused_before_it_is_created(conn, host, tmp_path, create_source, monkeypatch):
    path, before = _vm(tmp_path)
    monkeypatch.chdir(tmp_path)  # /proc/self/cwd/new is tmp_path/new for this process
    share = {"tag": "t", "source": "/proc/self/cwd/new", "create_source": create_source}
    with pytest.raises(_share.ShareError) as err:
        converge_file(str(path), [share], Settings(), host)
    assert str(err.value).startswith("share 't': source '/proc/self/cwd/new' is below /proc: procfs is not a "
                                     "directory tree to share")
    assert not os.path.exists(tmp_path / "new")
    assert path.read_bytes() == before


def test_xml_file_backup_is_made_safely_and_a_failed_one_changes_nothing(host, tmp_path, monkeypatch):
    """xml_file backups use _files.backup_file (O_EXCL|O_NOFOLLOW, a random part in the name), not Ansible's
    backup_local, which follows a symbolic link planted at its predictable name in a directory others can write."""
    import re
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _files
    from ansible_collections.virtiofs.libvirt.plugins.modules import share as share_module

    assert share_module.backup_file is _files.backup_file
    path = tmp_path / "d.xml"
    path.write_text(domain_xml("f", str(uuidlib.uuid4())))
    old = path.read_bytes()
    safe = dataclasses.replace(host, backup_file=_files.backup_file)
    res = converge_file(str(path), [{"tag": "t", "source": str(tmp_path)}], Settings(backup=True), safe)
    assert res["changed"] is True and open(res["backup_file"], "rb").read() == old
    assert re.fullmatch(re.escape(str(path)) + r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d\.[0-9a-f]{8}~", res["backup_file"])

    def failing(p):
        raise _files.BackupError(p, p + ".bak", "write", OSError(28, "No space left on device"))

    current = path.read_bytes()
    with pytest.raises(_share.ShareError, match=r"was not changed$"):
        converge_file(str(path), [{"tag": "u", "source": str(tmp_path)}], Settings(backup=True),
                      dataclasses.replace(host, backup_file=failing))
    assert path.read_bytes() == current
