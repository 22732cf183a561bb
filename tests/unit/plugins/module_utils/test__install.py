# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for _install: the installer (plan, outcome, manifest) in the test world of install_world.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _install as I
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import InstallError
from install_world import C_SCRIPT, MEMBER, legacy_world, real_run, rust_script, sha, write_exec


# ------------------------------------------------------------------------------- manifest / decisions

IDENT = {"method": "url", "url": "https://a/x.zip", "checksum": "sha256:" + "a" * 64, "member": MEMBER}


def manifest(**kw):
    m = {"schema": 1, "sha256": "b" * 64, "version": "1.13.2", "request": dict(IDENT)}
    m.update(kw)
    return m


@pytest.mark.parametrize("man,binary_sha,ident,version,expected,why", [
    (None, "b" * 64, IDENT, None, False, "no manifest"),
    (manifest(), None, IDENT, None, False, "binary is missing"),
    (manifest(), "c" * 64, IDENT, None, False, "sha256 differs"),
    (manifest(), "b" * 64, dict(IDENT, url="https://a/y.zip"), None, False, "request changed (url)"),
    (manifest(), "b" * 64, dict(IDENT, checksum="sha256:" + "d" * 64), None, False, "request changed (checksum)"),
    (manifest(), "b" * 64, IDENT, "1.13.2", True, "same request"),
    (manifest(), "b" * 64, IDENT, ">=1.10.0", True, "same request"),
    (manifest(), "b" * 64, IDENT, None, True, "same request"),
    (manifest(), "b" * 64, IDENT, ">=1.14.0", False, "does not satisfy >=1.14.0"),
    (manifest(version="garbage"), "b" * 64, IDENT, "1.13.2", False, "does not satisfy"),
])
def test_decide_up_to_date(man, binary_sha, ident, version, expected, why):
    ok, reason = I.decide_up_to_date(man, binary_sha, ident, version)
    assert ok is expected
    assert why in reason


def test_read_manifest(tmp_path):
    assert I.read_manifest(str(tmp_path)) is None
    p = tmp_path / I.MANIFEST_NAME
    p.write_text("{not json")
    assert I.read_manifest(str(tmp_path)) is None
    p.write_text(json.dumps({"schema": 99}))
    assert I.read_manifest(str(tmp_path)) is None
    p.write_text(json.dumps(manifest()))
    assert I.read_manifest(str(tmp_path))["version"] == "1.13.2"


# ------------------------------------------------------------------------------- request validation

@pytest.mark.parametrize("kw,fragment", [
    (dict(method="url"), "method=url needs url"),
    (dict(method="url", url="https://a/x.zip"), "method=url needs checksum"),
    (dict(method="url", url="http://a/x.zip", checksum="sha256:" + "a" * 64), "allow_http"),
    (dict(method="url", url="https://a/x.zip", checksum="md5:abc"), "only sha256"),
    (dict(method="package", version="latest"), "not a version requirement"),
    (dict(method="package", mask_legacy=True), "needs register_vhost_user"),
    (dict(method="package", install_dir="relative"), "must be an absolute path"),
    (dict(method="package", binary_name="a/b"), "must be a plain file name"),
    (dict(method="package", vhost_user_priority=100), "between 0 and 99"),
    (dict(method="source", source_dir="/nonexistent/src"), "is not a directory"),
    (dict(method="source", source_archive="/nonexistent.tgz"), "is not a file"),
    (dict(method=None), "method must be one of"),
    (dict(method="source", checksum="sha256:" + "a" * 64), "checksum applies to the file at url or to source_archive"),
    (dict(method="source", source_dir="/", source_archive="/x.tgz"), "source_dir and source_archive are mutually exclusive"),
    (dict(method="source", source_dir="/", cargo_path="/nonexistent/cargo"), "is not an executable file"),
    (dict(method="source", source_dir="/", crate_version="newest"), "crate_version: not a version number"),
])
def test_request_validation(kw, fragment):
    with pytest.raises(InstallError, match=fragment):
        I.Request(**kw).validate()


def test_request_without_checksum_allowed_when_not_required():
    I.Request(method="url", url="https://a/x.zip", checksum_required=False).validate()
    assert I.Request(version="1.13.2").exact_version() == "1.13.2"
    assert I.Request(version=">=1.10").exact_version() is None
    assert I.Request(version="1.13").exact_version() is None  # any 1.13.x
    assert I.Request(crate_version="1.13.2", version=">=1").exact_version() == "1.13.2"


# ------------------------------------------------------------------------------- url installs

def test_url_install_then_idempotent_without_network(lab):
    url, checksum = lab.publish_zip("virtiofsd-v1.13.2.zip", rust_script("1.13.2"))
    res = lab.run(method="url", url=url, checksum=checksum, version="1.13.2")
    assert res["changed"] is True
    assert res["path"] == str(lab.binary)
    assert res["version"] == "1.13.2"
    assert res["implementation"] == "rust"
    assert res["capabilities"] == {"type": "fs", "features": ["migrate-precopy", "separate-options"]}
    assert "--shared-dir" in res["supported_options"]
    assert lab.binary.read_bytes() == rust_script("1.13.2")
    assert stat.S_IMODE(lab.binary.stat().st_mode) == 0o755
    assert stat.S_IMODE(lab.install_dir.stat().st_mode) == 0o755
    man = json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())
    assert man["version"] == "1.13.2"
    assert man["sha256"] == sha(rust_script("1.13.2"))
    assert man["artifact_sha256"] == checksum.split(":")[1]
    assert man["request"] == {"method": "url", "url": url, "checksum": checksum, "member": MEMBER}
    assert man["created_install_dir"] is True
    assert lab.moves and lab.moves[0][1] == str(lab.binary)
    assert os.path.dirname(lab.moves[0][0]) == str(lab.install_dir)  # staged in install_dir
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]  # no temp files left
    assert lab.server.requests == [url]
    assert os.listdir(lab.tmp) == []  # download removed

    res2 = lab.run(method="url", url=url, checksum=checksum, version="1.13.2")
    assert res2["changed"] is False
    assert res2["version"] == "1.13.2"
    assert lab.server.requests == [url]  # no second download
    assert res2["diff"]["before"] == res2["diff"]["after"]

    # a looser requirement is still satisfied by the same request: no download either
    res3 = lab.run(method="url", url=url, checksum=checksum, version=">=1.10.0")
    assert res3["changed"] is False
    assert lab.server.requests == [url]


def test_realpath_resolves_a_symlinked_install_dir(lab):
    """The host role writes its AppArmor/SELinux rules for realpath: they mediate the resolved path."""
    (lab.root / "srv").mkdir()
    (lab.root / "opt").symlink_to("srv")
    url, checksum = lab.publish_zip("virtiofsd-v1.13.2.zip", rust_script("1.13.2"))
    expected = os.path.join(os.path.realpath(lab.root), "srv", "virtiofsd-rust", "virtiofsd")
    checked = lab.run(check_mode=True, method="url", url=url, checksum=checksum, version="1.13.2")
    assert checked["path"] == str(lab.binary) and checked["realpath"] == expected
    res = lab.run(method="url", url=url, checksum=checksum, version="1.13.2")
    assert res["path"] == str(lab.binary) and res["realpath"] == expected == os.path.realpath(lab.binary)


def test_url_check_mode_downloads_nothing(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(check_mode=True, method="url", url=url, checksum=checksum, version="1.13.2")
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert res["diff"]["after"]["installed"] is True
    assert res["diff"]["before"]["installed"] is False
    assert "install virtiofsd into" in res["actions"][0]
    assert lab.server.requests == []
    assert not lab.install_dir.exists()


def test_checksum_mismatch_keeps_previous_binary(lab):
    url, checksum = lab.publish_zip("v1.zip", rust_script("1.13.2"))
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    manifest_before = (lab.install_dir / I.MANIFEST_NAME).read_bytes()
    url2 = lab.publish_zip("v2.zip", rust_script("1.13.3"))[0]
    with pytest.raises(InstallError) as exc:
        lab.run(method="url", url=url2, checksum="sha256:" + "0" * 64)
    assert "checksum mismatch" in str(exc.value)
    assert lab.binary.read_bytes() == before
    assert (lab.install_dir / I.MANIFEST_NAME).read_bytes() == manifest_before
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]
    assert real_run([str(lab.binary), "--version"])[1].strip() == "virtiofsd 1.13.2"


@pytest.mark.parametrize("daemon,kw,fragment", [
    (C_SCRIPT, {}, "is not the Rust virtiofsd"),
    (rust_script("1.12.0"), {"version": "1.13.2"}, "virtiofsd 1.12.0, which does not satisfy version '1.13.2'"),
    (rust_script("1.12.0"), {"version": ">=1.13.0"}, "does not satisfy"),
    (b"#!/bin/sh\necho hello\n", {}, "does not look like virtiofsd"),
])
def test_bad_binaries_are_rejected_and_nothing_changes(lab, daemon, kw, fragment):
    url, checksum = lab.publish_zip("good.zip", rust_script("1.13.2"))
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    url2, checksum2 = lab.publish_zip("bad.zip", daemon)
    with pytest.raises(InstallError, match=fragment) as err:
        lab.run(method="url", url=url2, checksum=checksum2, **kw)
    if daemon != b"#!/bin/sh\necho hello\n":  # a virtiofsd that is not the one wanted: the fix is named
        assert "nothing was installed (install the Rust virtiofsd: fix the url/source or the version)" in str(err.value)
    assert lab.binary.read_bytes() == before
    assert json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())["request"]["url"] == url
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]


def test_failed_first_install_leaves_no_install_dir(lab):
    url, checksum = lab.publish_zip("c.zip", C_SCRIPT)
    with pytest.raises(InstallError, match="legacy C virtiofsd"):
        lab.run(method="url", url=url, checksum=checksum)
    assert not lab.install_dir.exists()
    with pytest.raises(InstallError, match="HTTP status|Connection refused"):
        lab.run(method="url", url="https://artifacts.example/missing.zip", checksum=checksum)
    assert not lab.install_dir.exists()


def test_member_missing_is_reported(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script(), member="virtiofsd")
    with pytest.raises(InstallError, match="not found in the zip archive; it contains: virtiofsd"):
        lab.run(method="url", url=url, checksum=checksum)
    res = lab.run(method="url", url=url, checksum=checksum, member="virtiofsd")
    assert res["changed"] is True


def test_changed_binary_is_reinstalled(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.binary.write_bytes(rust_script("9.9.9"))
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert "sha256 differs" in res["actions"][0]
    assert lab.binary.read_bytes() == rust_script()
    assert len(lab.server.requests) == 2


def test_install_dir_writable_by_others_is_refused(lab):
    lab.install_dir.mkdir(parents=True)
    lab.install_dir.chmod(0o777)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    with pytest.raises(InstallError, match="writable by group and others .*libvirt runs it as root, so it is refused. Fix: chmod go-w"):
        lab.run(method="url", url=url, checksum=checksum)
    assert lab.server.requests == []


def test_unverified_download_warns(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum_required=False)
    assert res["changed"] is True
    assert lab.warnings and checksum.split(":")[1] in lab.warnings[0]


def test_not_root_cannot_install(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    host = lab.host()
    host.euid = 1000
    with pytest.raises(InstallError, match="installing virtiofsd needs root"):
        I.Installer(lab.request(method="url", url=url, checksum=checksum), host).present()


# ------------------------------------------------------------------------------- absent

def test_absent_removes_only_what_was_installed(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    (lab.install_dir / "virtiofsd.sh").write_text("#!/bin/sh\n")  # someone else's file

    res = lab.run(check_mode=True, state="absent")
    assert res["changed"] is True
    assert lab.binary.exists()

    res = lab.run(state="absent")
    assert res["changed"] is True
    assert not lab.binary.exists()
    assert not (lab.install_dir / I.MANIFEST_NAME).exists()
    assert (lab.install_dir / "virtiofsd.sh").exists()  # kept, and so is the directory

    res = lab.run(state="absent")
    assert res["changed"] is False

    (lab.install_dir / "virtiofsd.sh").unlink()
    lab.run(method="url", url=url, checksum=checksum)
    lab.run(state="absent")
    assert lab.install_dir.exists()  # it existed before the second install: not ours to remove


def test_absent_removes_created_dir(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.run(state="absent")
    assert not lab.install_dir.exists()


def test_absent_leaves_foreign_binary(lab):
    write_exec(lab.binary, rust_script())
    res = lab.run(state="absent")
    assert res["changed"] is False
    assert lab.binary.exists()
    assert "not installed by this module" in lab.warnings[0]


# ------------------------------------------------------------------------------- package method

def test_package_on_debian12_with_only_the_c_daemon(lab):
    legacy_world(lab)
    with pytest.raises(InstallError) as exc:
        lab.run(method="package")
    msg = str(exc.value)
    assert msg.startswith("no Rust virtiofsd package found")
    assert "(Debian 12 has none: use method url or source)" in msg
    assert "legacy C daemon" in msg


def test_package_elsewhere_suggests_installing_it(lab):
    lab.os_family, lab.distribution_major_version = "RedHat", "40"
    with pytest.raises(InstallError, match="ansible.builtin.package name=virtiofsd"):
        lab.run(method="package")


def test_package_finds_rust_binary_and_checks_version(lab):
    lab.distribution_major_version = "13"
    rust = write_exec(Path(lab.package_paths[0]), rust_script("1.13.2"))
    res = lab.run(method="package", version=">=1.11.1")
    assert res["changed"] is False
    assert res["path"] == str(rust)
    assert res["implementation"] == "rust"
    assert res["version"] == "1.13.2"
    assert res["method"] == "package"
    with pytest.raises(InstallError, match="satisfying >=1.14.0.*does not satisfy >=1.14.0"):
        lab.run(method="package", version=">=1.14.0")
    res = lab.run(method="package", register_vhost_user=True)
    assert res["changed"] is True
    assert json.loads((lab.etc / "40-virtiofsd-rust.json").read_text())["binary"] == str(rust)
    res = lab.run(state="absent", method="package")
    assert res["changed"] is True
    assert not (lab.etc / "40-virtiofsd-rust.json").exists()
    assert rust.exists()


@pytest.mark.parametrize("weak", ["binary", "directory"])
def test_package_binary_others_can_change_is_refused(lab, weak):
    lab.distribution_major_version = "13"
    rust = write_exec(Path(lab.package_paths[0]), rust_script("1.13.2"))
    target = rust if weak == "binary" else rust.parent
    target.chmod(0o775 if weak == "binary" else 0o777)
    with pytest.raises(InstallError) as exc:
        lab.run(method="package", register_vhost_user=True)
    assert str(exc.value) == (
        f"the package's virtiofsd {rust} can be changed by users other than root"
        + ("" if weak == "binary" else f" because of {target}")
        + f": {target} is writable by {'group' if weak == 'binary' else 'group and others'} (uid 0, mode "
        f"{'0775' if weak == 'binary' else '0777'}); libvirt runs it as root, so it is refused. "
        f"Fix: chmod go-w {target}. Nothing was changed."
    )
    assert not lab.etc.exists() or list(lab.etc.iterdir()) == []  # no descriptor registered
    target.chmod(0o755)
    assert lab.run(method="package")["path"] == str(rust)


def test_binary_mode_is_repaired_without_download(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.binary.chmod(0o700)
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert res["actions"] == [f"set owner root and mode 0755 on {lab.binary}"]
    assert stat.S_IMODE(lab.binary.stat().st_mode) == 0o755
    assert lab.server.requests == [url]


def test_existing_install_dir_keeps_its_mode(lab):
    lab.install_dir.mkdir(parents=True)
    lab.install_dir.chmod(0o750)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    assert stat.S_IMODE(lab.install_dir.stat().st_mode) == 0o750
    man = json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())
    assert man["created_install_dir"] is False
    lab.run(state="absent")
    assert lab.install_dir.exists()


# ------------------------------------------------------------------------------- package advice from Ansible's facts

GENERIC_HINT = ("(install the distribution's virtiofsd package first, e.g. with "
                "ansible.builtin.package name=virtiofsd, or use method url or source)")


@pytest.mark.parametrize("family,major,hint", [
    ("Debian", "12", "(Debian 12 has none: use method url or source)"),
    ("Debian", "11", "(Debian 11 has none: use method url or source)"),
    ("Debian", "13", GENERIC_HINT),
    ("Debian", "n/a", GENERIC_HINT),  # Debian testing/sid
    ("RedHat", "9", GENERIC_HINT),
    ("Suse", "15", GENERIC_HINT),
])
def test_package_hint_from_facts(family, major, hint):
    assert I.package_hint(family, major) == hint


@pytest.mark.parametrize("family,major,missing", [
    (None, "12", "os_family"),
    ("Debian", None, "distribution_major_version"),
    (None, None, "os_family, distribution_major_version"),
    ("", "", "os_family, distribution_major_version"),
])
def test_package_hint_without_facts_names_the_options(family, major, missing):
    with pytest.raises(InstallError) as exc:
        I.package_hint(family, major)
    assert str(exc.value) == (
        "method=package needs the options os_family and distribution_major_version to say what to do "
        f"(missing: {missing}): gather facts (ansible.builtin.setup) and pass "
        "ansible_facts['os_family'] and ansible_facts['distribution_major_version'], or pass them yourself"
    )


def test_package_without_facts_fails_only_when_no_package_is_found(lab):
    lab.os_family = lab.distribution_major_version = None
    legacy_world(lab)
    with pytest.raises(InstallError) as exc:
        lab.run(method="package")
    msg = str(exc.value)
    assert msg.startswith("no Rust virtiofsd package found (looked at ")
    assert "legacy C daemon" in msg
    assert msg.endswith("; method=package needs the options os_family and distribution_major_version to say what to do "
                        "(missing: os_family, distribution_major_version): gather facts (ansible.builtin.setup) and pass "
                        "ansible_facts['os_family'] and ansible_facts['distribution_major_version'], or pass them yourself")
    rust = write_exec(Path(lab.package_paths[0]), rust_script("1.13.2"))
    res = lab.run(method="package")  # the facts are only needed for the advice
    assert res["path"] == str(rust)
    assert res["binary_changed"] is False


# ------------------------------------------------------------------------------- binary_changed

def test_binary_changed_is_true_only_when_the_binary_is_installed_or_replaced(lab):
    url, checksum = lab.publish_zip("v1.zip", rust_script("1.13.2"))
    assert lab.run(check_mode=True, method="url", url=url, checksum=checksum)["binary_changed"] is True
    assert not lab.binary.exists()
    res = lab.run(method="url", url=url, checksum=checksum)
    assert (res["changed"], res["binary_changed"]) == (True, True)
    res = lab.run(method="url", url=url, checksum=checksum)
    assert (res["changed"], res["binary_changed"]) == (False, False)
    lab.binary.chmod(0o700)  # only the mode is repaired: changed, but the binary is the same
    res = lab.run(method="url", url=url, checksum=checksum)
    assert (res["changed"], res["binary_changed"]) == (True, False)
    res = lab.run(method="url", url=url, checksum=checksum, register_vhost_user=True)
    assert (res["changed"], res["binary_changed"]) == (True, False)
    url2, checksum2 = lab.publish_zip("v2.zip", rust_script("1.13.3"))
    res = lab.run(method="url", url=url2, checksum=checksum2, register_vhost_user=True)
    assert (res["changed"], res["binary_changed"], res["version"]) == (True, True, "1.13.3")
    res = lab.run(state="absent")
    assert (res["changed"], res["binary_changed"]) == (True, False)


def test_run_turns_an_os_error_into_an_install_error_with_its_traceback(lab, monkeypatch):
    def refuses(self):
        raise PermissionError(13, "Permission denied", "/opt/ro/virtiofsd")

    url, checksum = lab.publish_zip("v.zip", rust_script())
    installer = I.Installer(lab.request(method="url", url=url, checksum=checksum), lab.host())
    monkeypatch.setattr(I.Installer, "present", refuses)
    with pytest.raises(InstallError) as err:
        installer.run()
    assert str(err.value) == "virtiofsd: [Errno 13] Permission denied: '/opt/ro/virtiofsd'"
    assert "PermissionError" in err.value.exception and "in refuses" in err.value.exception
    assert isinstance(err.value.__cause__, PermissionError)
    assert InstallError("x").exception is None
