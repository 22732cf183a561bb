# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt's vhost-user descriptor lookup against fixture trees (see _vhost_user's docstring)."""
from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _install as I
from ansible_collections.virtiofs.libvirt.plugins.module_utils import _vhost_user as V
from install_world import legacy_world, rust_script


def fs(binary: str, **extra) -> str:
    return json.dumps(dict({"type": "fs", "binary": binary}, **extra))


@pytest.fixture
def tree(tmp_path):
    """``share`` (/usr/share/qemu/vhost-user), ``etc`` (/etc/qemu/vhost-user), ``home``
    ($XDG_CONFIG_HOME/qemu/vhost-user), lowest priority first."""
    dirs = [tmp_path / "share", tmp_path / "etc", tmp_path / "home"]
    for d in dirs:
        d.mkdir()
    return dirs


def names(descriptors):
    return [d.name for d in descriptors]


def test_effective_descriptors_follow_libvirt_rules(tmp_path):
    share, etc = tmp_path / "share", tmp_path / "etc"
    share.mkdir()
    etc.mkdir()
    (share / "50-qemu-virtiofsd.json").write_text(json.dumps({"type": "fs", "binary": "/c/virtiofsd"}))
    (share / "50-virtiofsd.json").write_text(json.dumps({"type": "fs", "binary": "/rust/virtiofsd"}))
    (share / "60-other.json").write_text(json.dumps({"type": "gpu", "binary": "/x"}))
    (share / ".hidden.json").write_text(json.dumps({"type": "fs", "binary": "/hidden"}))
    (share / "70-broken.json").write_text("{nope")
    dirs = [str(share), str(etc)]

    descs = V.scan_vhost_user(dirs)
    eff = V.effective_descriptors(descs, dirs)
    assert eff["selected"].binary == "/c/virtiofsd"  # 'q' sorts before 'v'
    assert [d.name for d in descs] == ["50-qemu-virtiofsd.json", "50-virtiofsd.json", "60-other.json", "70-broken.json"]
    assert descs[-1].error.startswith("not JSON")

    (etc / "50-qemu-virtiofsd.json").write_text("")  # mask
    descs = V.scan_vhost_user(dirs)
    eff = V.effective_descriptors(descs, dirs)
    assert eff["selected"].binary == "/rust/virtiofsd"
    assert eff["by_path"][str(share / "50-qemu-virtiofsd.json")] == {"masked_by": str(etc / "50-qemu-virtiofsd.json")}

    (etc / "50-virtiofsd.json").write_text(json.dumps({"type": "fs", "binary": "/etc/override"}))
    (etc / "40-virtiofsd-rust.json").write_text(V.render_descriptor("/opt/v/virtiofsd", [], []))
    descs = V.scan_vhost_user(dirs)
    eff = V.effective_descriptors(descs, dirs)
    assert eff["selected"].binary == "/opt/v/virtiofsd"
    assert eff["selected"].managed is True
    assert eff["by_path"][str(share / "50-virtiofsd.json")] == {"overridden_by": str(etc / "50-virtiofsd.json")}


def test_search_dirs_system_and_session(monkeypatch, tmp_path):
    assert V.search_dirs() == ("/usr/share/qemu/vhost-user", "/etc/qemu/vhost-user")
    assert V.search_dirs(privileged=False, environ={"XDG_CONFIG_HOME": "/cfg"}) == (
        "/usr/share/qemu/vhost-user", "/etc/qemu/vhost-user", "/cfg/qemu/vhost-user")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert V.search_dirs(privileged=False, environ={})[-1] == f"{tmp_path}/.config/qemu/vhost-user"


def test_later_directory_overrides_and_empty_file_masks(tree):
    share, etc, home = tree
    (share / "50-qemu-virtiofsd.json").write_text(fs("/c"))
    (etc / "50-qemu-virtiofsd.json").write_text(fs("/etc-c"))
    (home / "50-qemu-virtiofsd.json").write_text("")
    found = V.lookup(tree)
    assert found.errors == []
    assert found.by_path == {
        str(share / "50-qemu-virtiofsd.json"): {"masked_by": str(home / "50-qemu-virtiofsd.json")},
        str(etc / "50-qemu-virtiofsd.json"): {"masked_by": str(home / "50-qemu-virtiofsd.json")},
    }
    assert found.active == []
    assert found.selected is None
    assert found.error == f"{V.NO_DAEMON}: no usable vhost-user descriptor of type fs in {', '.join(map(str, tree))}"

    # without the session directory the /etc file replaces the /usr/share one
    found = V.lookup(tree[:2])
    assert found.selected.path == str(etc / "50-qemu-virtiofsd.json")
    assert found.by_path == {str(share / "50-qemu-virtiofsd.json"): {"overridden_by": str(etc / "50-qemu-virtiofsd.json")}}


def test_only_an_empty_file_masks_white_space_is_broken_json(tree):
    share, etc, _home = tree
    (share / "50-qemu-virtiofsd.json").write_text(fs("/c"))
    (etc / "50-qemu-virtiofsd.json").write_text("\n")
    found = V.lookup(tree)
    assert found.selected is None
    assert len(found.errors) == 1
    assert found.errors[0].startswith(f"{etc / '50-qemu-virtiofsd.json'}: not JSON")
    assert found.error.startswith("libvirt fails to read the vhost-user descriptors: ")


def test_name_order_across_directories_is_strcmp(tree):
    share, etc, home = tree
    (share / "50-virtiofsd.json").write_text(fs("/share-50"))
    (etc / "60-gpu.json").write_text(json.dumps({"type": "gpu", "binary": "/gpu"}))
    (home / "70-virtiofsd.json").write_text(fs("/home-70"))
    (home / "100-virtiofsd.json").write_text(fs("/home-100"))  # '1' < '5': string, not number order
    (etc / "50-Virtiofsd.json").write_text(fs("/etc-upper"))  # 'V' < 'v' (bytes, no locale)
    found = V.lookup(tree)
    assert names(found.active) == ["100-virtiofsd.json", "50-Virtiofsd.json", "50-virtiofsd.json",
                                   "60-gpu.json", "70-virtiofsd.json"]
    assert found.selected.binary == "/home-100"
    (home / "100-virtiofsd.json").unlink()
    assert V.lookup(tree).selected.binary == "/etc-upper"


def test_file_names_dot_files_no_extension_and_non_regular_entries(tree):
    share, etc, _home = tree
    (share / "50-qemu-virtiofsd.json").write_text(fs("/c"))
    (etc / ".10-hidden.json").write_text(fs("/hidden"))  # dot files are ignored
    (etc / "20-no-extension").write_text(fs("/no-ext"))  # no .json needed
    (etc / "05-a-directory").mkdir()  # not a regular file: skipped
    (share / "30-target.json").write_text(fs("/linked"))
    (etc / "30-link.json").symlink_to(share / "30-target.json")  # a symlink to a file counts
    found = V.lookup(tree)
    assert names(found.descriptors) == ["30-target.json", "50-qemu-virtiofsd.json", "20-no-extension", "30-link.json"]
    assert found.selected.path == str(etc / "20-no-extension")
    (etc / "20-no-extension").unlink()
    assert V.lookup(tree).selected.path == str(etc / "30-link.json")


def test_non_fs_types_are_passed_over_unknown_types_fail(tree):
    share, etc, _home = tree
    (share / "10-gpu.json").write_text(json.dumps({"type": "gpu", "binary": "/gpu"}))
    (share / "20-net.json").write_text(json.dumps({"type": "net", "binary": "/net"}))
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    assert V.lookup(tree).selected.binary == "/rust"
    (etc / "30-what.json").write_text(json.dumps({"type": "teleport", "binary": "/x"}))
    found = V.lookup(tree)
    assert found.selected is None
    assert found.errors == [f"{etc / '30-what.json'}: unknown vhost-user type 'teleport'"]
    (etc / "30-what.json").write_text(json.dumps(["not", "an", "object"]))
    assert V.lookup(tree).errors == [f"{etc / '30-what.json'}: not a JSON object"]
    (etc / "30-what.json").write_text(json.dumps({"binary": "/x"}))
    assert V.lookup(tree).errors == [f"{etc / '30-what.json'}: unknown vhost-user type None"]


def test_invalid_json_fails_the_lookup_only_when_libvirt_reads_it(tree):
    share, etc, home = tree
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    (share / "90-broken.json").write_text("{nope")
    found = V.lookup(tree)
    assert found.selected is None  # libvirt does not go on to the next file: it fails
    assert found.errors[0].startswith(f"{share / '90-broken.json'}: not JSON")
    assert V.vhost_user_fs_descriptor(tree) is None
    # a broken file that a later directory masks or replaces is never parsed
    (etc / "90-broken.json").write_text("")
    assert V.lookup(tree).selected.binary == "/rust"
    (home / "90-broken.json").write_text(json.dumps({"type": "gpu", "binary": "/gpu"}))
    assert V.lookup(tree).selected.binary == "/rust"


def test_unreadable_and_oversized_files_fail_the_lookup(tree, monkeypatch):
    share, etc, _home = tree
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    secret = etc / "60-secret.json"
    secret.write_text(fs("/secret"))
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if os.fspath(path) == str(secret):
            raise PermissionError(13, "Permission denied", str(secret))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    found = V.lookup(tree)
    assert found.selected is None
    assert found.errors == [f"{secret}: cannot read: [Errno 13] Permission denied: '{secret}'"]
    monkeypatch.undo()

    secret.write_text(" " * (V.DOCUMENT_SIZE + 1))
    assert V.lookup(tree).errors == [f"{secret}: larger than 1048576 bytes, libvirt does not read it"]


def test_dangling_symlink_fails_even_when_overridden(tree):
    share, etc, _home = tree
    (share / "40-gone.json").symlink_to(share / "nowhere.json")
    (etc / "40-gone.json").write_text(fs("/etc"))
    found = V.lookup(tree)
    assert found.selected is None
    assert found.errors == [f"{share / '40-gone.json'}: cannot stat: No such file or directory"]


def test_missing_directory_is_skipped_a_file_in_its_place_fails(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    assert V.lookup([str(share), str(tmp_path / "missing")]).selected.binary == "/rust"
    (tmp_path / "etc").write_text("")
    found = V.lookup([str(share), str(tmp_path / "etc")])
    assert found.selected is None
    assert found.errors == [f"cannot open directory {tmp_path / 'etc'}: Not a directory"]


def test_fs_descriptor_without_binary(tree):
    share, _etc, _home = tree
    (share / "40-nobinary.json").write_text(json.dumps({"type": "fs"}))
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    found = V.lookup(tree)  # libvirt 9.x takes the first fs descriptor as it is
    assert found.selected.path == str(share / "40-nobinary.json")
    assert found.error == f"{V.NO_DAEMON}: {share / '40-nobinary.json'} has type fs but no binary"
    assert V.vhost_user_fs_descriptor(tree) is None
    found = V.lookup(tree, probe=lambda binary: None)  # newer libvirt: it cannot be probed
    assert found.selected.binary == "/rust"
    assert [(d.name, why) for d, why in found.skipped] == [("40-nobinary.json", "no binary")]


def test_probe_skips_binaries_that_fail(tree):
    share, etc, _home = tree
    (share / "50-qemu-virtiofsd.json").write_text(fs("/c"))
    (share / "50-virtiofsd.json").write_text(fs("/rust"))
    assert V.lookup(tree).selected.binary == "/c"
    calls = []

    def probe(binary):
        calls.append(binary)
        return "rc 1" if binary == "/c" else None

    found = V.lookup(tree, probe=probe)
    assert found.selected.binary == "/rust"
    assert calls == ["/c", "/rust"]
    assert [(d.binary, why) for d, why in found.skipped] == [("/c", "rc 1")]
    found = V.lookup(tree, probe=lambda binary: "rc 1")
    assert found.selected is None
    assert found.error.startswith(V.NO_DAEMON)


def test_share_info_and_installer_name_the_same_daemon(tree, tmp_path):
    """The two callers used to disagree: share_info read only ``*.json`` files, the installer
    every file; both now go through _vhost_user."""
    share, etc, _home = tree
    (share / "50-qemu-virtiofsd.json").write_text(fs("/usr/lib/qemu/virtiofsd", description="C"))
    (etc / "40-virtiofsd-rust").write_text(fs("/opt/virtiofsd-rust/virtiofsd", description="Rust"))
    dirs = [str(share), str(etc)]
    host = I.Host(run=lambda argv: (127, "", "not run"), fetch=None, move=None, set_attrs=None,
                  get_bin_path=None, warn=None, tmpdir=str(tmp_path), package_paths=(),
                  vhost_user_system_dirs=tuple(dirs))
    installer = I.Installer(I.Request(method="package", vhost_user_dir=str(etc)), host)
    report = installer.discover()["vhost_user_descriptors"]
    assert [(d["file"], d["selected"]) for d in report] == [
        (str(share / "50-qemu-virtiofsd.json"), False),
        (str(etc / "40-virtiofsd-rust"), True),
    ]
    assert V.vhost_user_fs_descriptor(dirs) == {
        "descriptor": str(etc / "40-virtiofsd-rust"),
        "binary": "/opt/virtiofsd-rust/virtiofsd",
        "description": "Rust",
    }


def test_managed_tags_round_trip(tmp_path):
    path = tmp_path / "40-virtiofsd-rust.json"
    path.write_text(V.render_descriptor("/opt/v/virtiofsd", ["migrate-precopy"], ["50-b.json", "50-a.json"]))
    desc = V.read_descriptor(str(path))
    assert desc.managed is True
    assert desc.masks == ["50-a.json", "50-b.json"]
    assert desc.description == "Rust virtiofsd (managed by virtiofs.libvirt.virtiofsd)"
    assert V.read_descriptor(str(Path(tmp_path / "missing.json"))).error == "cannot stat: No such file or directory"


# ------------------------------------------------------------------------------- vhost-user

def test_descriptor_rendering_and_tags():
    text = V.render_descriptor("/opt/v/virtiofsd", ["migrate-precopy"], ["50-qemu-virtiofsd.json"])
    data = json.loads(text)
    assert data["type"] == "fs"
    assert data["binary"] == "/opt/v/virtiofsd"
    assert data["features"] == ["migrate-precopy"]
    assert V.descriptor_name(40) == "40-virtiofsd-rust.json"
    assert V.descriptor_name(5) == "05-virtiofsd-rust.json"


# ------------------------------------------------------------------------------- vhost-user registration

def test_legacy_daemon_reported(lab):
    c_bin = legacy_world(lab)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["legacy_daemons"] == [{
        "path": str(c_bin),
        "realpath": str(c_bin),
        "version": "7.2.22",
        "version_raw": "virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
        "descriptors": [str(lab.share / "50-qemu-virtiofsd.json")],
    }]
    (desc,) = res["vhost_user_descriptors"]
    assert desc["implementation"] == "c"
    assert desc["selected"] is True
    assert desc["binary"] == str(c_bin)


def test_register_and_mask_then_unregister(lab):
    legacy_world(lab)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    kw = dict(method="url", url=url, checksum=checksum, register_vhost_user=True, mask_legacy=True)

    res = lab.run(check_mode=True, **kw)
    assert res["changed"] is True
    assert not lab.etc.exists()

    res = lab.run(**kw)
    target = lab.etc / "40-virtiofsd-rust.json"
    assert res["vhost_user_descriptor"] == str(target)
    data = json.loads(target.read_text())
    assert data["binary"] == str(lab.binary)
    assert data["type"] == "fs"
    assert data["features"] == ["migrate-precopy", "separate-options"]
    mask = lab.etc / "50-qemu-virtiofsd.json"
    assert mask.exists() and mask.stat().st_size == 0
    assert res["masked"] == ["50-qemu-virtiofsd.json"]
    by_file = {d["file"]: d for d in res["vhost_user_descriptors"]}
    assert by_file[str(target)]["selected"] is True
    assert by_file[str(target)]["implementation"] == "rust"
    assert by_file[str(lab.share / "50-qemu-virtiofsd.json")]["masked_by"] == str(mask)

    res = lab.run(**kw)
    assert res["changed"] is False, res["actions"]
    assert len(lab.server.requests) == 1

    # new priority: the old descriptor moves, the mask stays
    res = lab.run(vhost_user_priority=10, **kw)
    assert res["changed"] is True
    assert not target.exists()
    assert (lab.etc / "10-virtiofsd-rust.json").exists()
    assert mask.exists()

    # masking switched off: our mask goes
    res = lab.run(**dict(kw, mask_legacy=False, vhost_user_priority=10))
    assert not mask.exists()
    assert "masks=" not in (lab.etc / "10-virtiofsd-rust.json").read_text()

    res = lab.run(**dict(kw, vhost_user_priority=10))
    assert mask.exists()
    res = lab.run(state="absent")
    assert res["changed"] is True
    assert sorted(os.listdir(lab.etc)) == []
    assert (lab.share / "50-qemu-virtiofsd.json").exists()


def test_admin_mask_is_not_claimed_or_removed(lab):
    legacy_world(lab)
    lab.etc.mkdir()
    admin_mask = lab.etc / "50-qemu-virtiofsd.json"
    admin_mask.write_text("")
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum=checksum, register_vhost_user=True, mask_legacy=True)
    assert res["masked"] == []
    lab.run(state="absent")
    assert admin_mask.exists()


def test_register_false_removes_our_descriptor(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum, register_vhost_user=True)
    assert (lab.etc / "40-virtiofsd-rust.json").exists()
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert not (lab.etc / "40-virtiofsd-rust.json").exists()
