"""Unit tests of _guest: what a guest shows, parsed and joined with the role's shares."""

from __future__ import annotations

import json

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest import (
    GuestInfoError,
    fstab_current,
    join,
    parse_findmnt,
    parse_fstab,
    virtiofs_registered,
)

PROC_FILESYSTEMS = "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\tfuse\nnodev\tvirtiofs\n"

FSTAB = """# /etc/fstab: static file system information.
UUID=1234 / ext4 errors=remount-ro 0 1
data /mnt/data virtiofs defaults 0 0
   # an indented comment
short line
logs /mnt/logs virtiofs ro,nofail   # a trailing comment
/dev/sdb1 /mnt/other ext4 defaults 0 2
"""

SHARE = {"tag": "data", "path": "/mnt/data", "state": "mounted", "options": "defaults", "automount": False,
         "mode": "0755"}


def findmnt(*entries):
    return json.dumps({"filesystems": [dict(zip(("target", "source", "fstype", "options"), e)) for e in entries]})


def test_virtiofs_registered_reads_the_last_field():
    assert virtiofs_registered(PROC_FILESYSTEMS) is True
    assert virtiofs_registered("nodev\tfuse\nnodev\tvirtiofsx\n\text4\n") is False
    assert virtiofs_registered("") is False


def test_parse_fstab_fields_defaults_and_comments():
    entries = parse_fstab(FSTAB)
    assert [e["path"] for e in entries] == ["/", "/mnt/data", "/mnt/logs", "/mnt/other"]
    logs = entries[2]
    assert logs == {"src": "logs", "path": "/mnt/logs", "fstype": "virtiofs", "opts": "ro,nofail", "dump": "0",
                    "passno": "0", "line": "logs /mnt/logs virtiofs ro,nofail   # a trailing comment"}
    assert entries[0]["passno"] == "1"


def test_parse_findmnt_json_and_errors():
    assert parse_findmnt(findmnt(("/mnt/data", "data", "virtiofs", "rw"))) == [
        {"target": "/mnt/data", "source": "data", "fstype": "virtiofs", "options": "rw"}]
    assert parse_findmnt("") == []
    with pytest.raises(GuestInfoError, match="printed something that is not JSON"):
        parse_findmnt("TARGET SOURCE\n/ /dev/sda1")
    with pytest.raises(GuestInfoError, match="no 'filesystems' list"):
        parse_findmnt('{"mounts": []}')


@pytest.mark.parametrize("lines, expected", [
    ([], False),
    ([{"src": "data", "fstype": "virtiofs", "opts": "defaults", "dump": "0", "passno": "0"}], True),
    ([{"src": "data", "fstype": "virtiofs", "opts": "defaults", "dump": "0", "passno": "0"}] * 2, True),
    ([{"src": "data", "fstype": "virtiofs", "opts": "ro", "dump": "0", "passno": "0"}], False),
    ([{"src": "other", "fstype": "virtiofs", "opts": "defaults", "dump": "0", "passno": "0"}], False),
    ([{"src": "data", "fstype": "virtiofs", "opts": "defaults", "dump": "0", "passno": "2"}], False),
    ([{"src": "data", "fstype": "virtiofs", "opts": "defaults", "dump": "0", "passno": "0"},
      {"src": "data", "fstype": "ext4", "opts": "defaults", "dump": "0", "passno": "0"}], False),
])
def test_fstab_current_is_what_ansible_posix_mount_would_leave(lines, expected):
    assert fstab_current(SHARE, lines) is expected


def test_join_mounted_share_in_place():
    mounts = parse_findmnt(findmnt(("/", "/dev/vda1", "ext4", "rw"), ("/mnt/data", "data", "virtiofs", "rw")))
    [share] = join([SHARE], parse_fstab(FSTAB), mounts, systemd=True)
    assert share["mode"] == "0755"  # the input is kept
    assert share["fstab_current"] is True
    assert [m["source"] for m in share["same"]] == ["data"]
    assert share["other_tag"] == [] and share["foreign"] == [] and share["autofs"] == []
    assert share["stop_automount"] is False


def test_join_stacked_mounts_other_tag_foreign_and_autofs():
    mounts = parse_findmnt(findmnt(("/mnt/data", "systemd-1", "autofs", "rw"),
                                   ("/mnt/data", "old", "virtiofs", "rw"),
                                   ("/mnt/data", "tmpfs", "tmpfs", "rw")))
    [share] = join([SHARE], [], mounts, systemd=True)
    assert share["fstab"] == [] and share["fstab_current"] is False
    assert len(share["at_path"]) == 3
    assert share["same"] == []
    assert [m["source"] for m in share["other_tag"]] == ["old"]
    assert [m["fstype"] for m in share["autofs"]] == ["autofs"]
    assert [m["fstype"] for m in share["foreign"]] == ["tmpfs"]
    # mounted without automount: the automount on the path goes
    assert share["stop_automount"] is True
    # without systemd, an autofs mount is foreign and nothing is stopped
    [share] = join([SHARE], [], mounts, systemd=False)
    assert share["autofs"] == [] and share["stop_automount"] is False
    assert sorted(m["fstype"] for m in share["foreign"]) == ["autofs", "tmpfs"]


@pytest.mark.parametrize("state, automount, stop", [
    ("mounted", True, False), ("mounted", False, True), ("present", False, False),
    ("unmounted", False, True), ("absent", True, True)])
def test_join_stop_automount_by_state(state, automount, stop):
    mounts = parse_findmnt(findmnt(("/mnt/data", "systemd-1", "autofs", "rw")))
    [share] = join([dict(SHARE, state=state, automount=automount)], [], mounts, systemd=True)
    assert share["stop_automount"] is stop


def test_join_without_tag_or_options_is_never_current():
    [share] = join([{"path": "/mnt/data"}], parse_fstab(FSTAB), [], systemd=True)
    assert share["fstab_current"] is False
    assert [e["src"] for e in share["fstab"]] == ["data"]


def test_sysfs_tags_none_without_the_directory_and_sorted_with_it(tmp_path):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest import sysfs_tags
    assert sysfs_tags(str(tmp_path / "virtiofs")) is None
    for n, tag in ((0, "zeta\n"), (1, "alpha\n")):
        (tmp_path / "virtiofs" / str(n)).mkdir(parents=True)
        (tmp_path / "virtiofs" / str(n) / "tag").write_text(tag)
    (tmp_path / "virtiofs" / "features").mkdir()
    assert sysfs_tags(str(tmp_path / "virtiofs")) == ["alpha", "zeta"]


def test_guest_report_from_files_and_a_fake_findmnt(tmp_path):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest import guest_report

    (tmp_path / "fstab").write_text("data /mnt/data virtiofs defaults 0 0\n")
    (tmp_path / "filesystems").write_text("nodev\tproc\nnodev\tvirtiofs\n")
    (tmp_path / "sys" / "0").mkdir(parents=True)
    (tmp_path / "sys" / "0" / "tag").write_text("data\n")
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, json.dumps({"filesystems": [
            {"target": "/mnt/data", "source": "data", "fstype": "virtiofs", "options": "rw"}]}), ""

    res = guest_report([{"tag": "data", "path": "/mnt/data", "state": "mounted", "options": "defaults"}],
                       str(tmp_path / "fstab"), "Linux", "6.9.0", "systemd", "/bin/findmnt", run,
                       proc_filesystems=str(tmp_path / "filesystems"), sysfs=str(tmp_path / "sys"))
    assert calls == [["/bin/findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS"]]
    assert (res["changed"], res["kernel"], res["virtiofs_registered"], res["tags"]) == (False, "6.9.0", True, ["data"])
    assert res["shares"][0]["fstab_current"] is True and len(res["shares"][0]["same"]) == 1


def test_guest_report_names_findmnt_failures(tmp_path):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest import guest_report

    args = ([], str(tmp_path / "none"), "Linux", "6.1", "systemd")
    with pytest.raises(GuestInfoError, match="findmnt not found on this guest: install util-linux"):
        guest_report(*args, None, lambda argv: (0, "", ""))
    with pytest.raises(GuestInfoError) as err:
        guest_report(*args, "/bin/findmnt", lambda argv: (2, "", "bad\n"))
    assert str(err.value) == "findmnt --json --list --output TARGET,SOURCE,FSTYPE,OPTIONS failed (rc 2): bad"
    with pytest.raises(GuestInfoError) as err:  # without stderr the output is named
        guest_report(*args, "/bin/findmnt", lambda argv: (3, "partial\n", ""))
    assert str(err.value) == "findmnt --json --list --output TARGET,SOURCE,FSTYPE,OPTIONS failed (rc 3): partial"
