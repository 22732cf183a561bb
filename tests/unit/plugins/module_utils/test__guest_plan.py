# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest role's decisions: every message word for word, every field."""
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _guest_plan as gp

from role_tasks import refusal as role_task


def errors(*mounts, **kw):
    return gp.guest_plan(list(mounts), **kw)["errors"]


def mount(entry, **kw):
    result = gp.guest_plan([entry], **kw)
    assert result["errors"] == [] and result["failure"] is None
    return result["mounts"][0]


W = 'virtiofs_guest_mounts[0] (tag "t", path "/m")'
NO_TAG = 'virtiofs_guest_mounts[0] (tag "", path "/m"): tag is missing or empty; set it to the <target dir> of the share in the domain XML'


@pytest.mark.parametrize("entry,expected", [
    ("str", ["virtiofs_guest_mounts[0]: must be a dict with at least tag and path, got str"]),
    (5, ["virtiofs_guest_mounts[0]: must be a dict with at least tag and path, got 5"]),
    ({"path": "/m"}, [NO_TAG]),
    ({"tag": None, "path": "/m"}, [NO_TAG]),
    ({"tag": 0, "path": "/mnt/zero"},
     ['virtiofs_guest_mounts[0] (tag 0, path "/mnt/zero"): tag must be a string, got int 0: quote it in YAML (here and in the domain XML)']),
    ({"tag": "t" * 37, "path": "/m"},
     [f'virtiofs_guest_mounts[0] (tag "{"t" * 37}", path "/m"): tag \'{"t" * 37}\' is 37 bytes long but a virtio-fs tag holds at most 36 '
      "bytes: use a shorter tag (here and in the domain XML)"]),
    ({"tag": "t"}, ['virtiofs_guest_mounts[0] (tag "t", path ""): path is missing; set the absolute mount point, e.g. /mnt/share']),
    ({"tag": "t", "path": "mnt/x"}, ['virtiofs_guest_mounts[0] (tag "t", path "mnt/x"): path must be absolute, e.g. /mnt/x']),
    ({"tag": "t", "path": "/a b"},
     ['virtiofs_guest_mounts[0] (tag "t", path "/a b"): path must not contain whitespace, backslash, & or # (fstab escaping); choose a plain path']),
    ({"tag": "t", "path": "/a#b"},
     ['virtiofs_guest_mounts[0] (tag "t", path "/a#b"): path must not contain whitespace, backslash, & or # (fstab escaping); choose a plain path']),
    ({"tag": "t", "path": "/a/../b/"}, ['virtiofs_guest_mounts[0] (tag "t", path "/a/../b/"): path is not normalised; write /b instead']),
    ({"tag": "t", "path": "//b"}, ['virtiofs_guest_mounts[0] (tag "t", path "//b"): path is not normalised; write /b instead']),
    ({"tag": "t", "path": "/"},
     ['virtiofs_guest_mounts[0] (tag "t", path "/"): path / cannot be the mount point of a share; use a directory such as /mnt/share']),
    ({"tag": "t", "path": "/m", "options": "rw, ro"}, [f'{W}: options "rw, ro" contain whitespace; separate options with commas only']),
    ({"tag": "t", "path": "/m", "options": "dax=always,ro"},
     [f'{W}: options "dax=always,ro" contain dax=always: DAX needs a DAX window that QEMU with the Rust virtiofsd does not provide, '
      "so the mount would fail with EINVAL; remove it from options"]),
    ({"tag": "t", "path": "/m", "selinux_context": "a b"},
     [f"{W}: selinux_context must not contain whitespace or quotes, e.g. system_u:object_r:httpd_sys_content_t:s0"]),
    ({"tag": "t", "path": "/m", "selinux_context": "a'b"},
     [f"{W}: selinux_context must not contain whitespace or quotes, e.g. system_u:object_r:httpd_sys_content_t:s0"]),
    ({"tag": "t", "path": "/m", "selinux_context": "x_t", "options": "ro,fscontext=y"},
     [f"{W}: selinux_context and a context option in options are both set; keep only one"]),
])
def test_messages(entry, expected):
    assert errors(entry) == expected


def test_failure_lists_every_problem_and_paths_once():
    result = gp.guest_plan([{"tag": "a", "path": "/m"}, {"tag": "b", "path": "/m"}, {"tag": "", "path": ""}])
    assert result["failure"] == [
        "virtiofs.libvirt.guest: invalid input, nothing was changed:",
        'virtiofs_guest_mounts[1] (tag "b", path "/m"): path is used by an earlier entry; each mount point may appear only once',
        'virtiofs_guest_mounts[2] (tag "", path ""): tag is missing or empty; set it to the <target dir> of the share in the domain XML',
        'virtiofs_guest_mounts[2] (tag "", path ""): path is missing; set the absolute mount point, e.g. /mnt/share',
    ]
    assert result["errors"] == result["failure"][1:]


def test_tag_of_unmounted_or_absent_share_is_not_checked_strictly():
    assert mount({"tag": "bad tag", "path": "/m", "state": "absent"})["tag"] == "bad tag"
    assert mount({"tag": "t" * 40, "path": "/m", "state": "unmounted"})["state"] == "unmounted"
    assert errors({"tag": "bad tag", "path": "/m", "state": "present"})[0].endswith("rename the share (here and in the domain XML)")


def test_defaults():
    assert mount({"tag": "t", "path": "/m"}) == {"tag": "t", "path": "/m", "state": "mounted", "options": "defaults,nofail",
                                                 "automount": False, "owner": None, "group": None, "mode": "0755"}
    assert gp.guest_plan(None) == {"errors": [], "failure": None, "mounts": []}


@pytest.mark.parametrize("entry,options,automount", [
    ({"options": "ro,nofail", "nofail": False}, "ro", False),
    ({"options": ",,", "nofail": "no"}, "defaults", False),
    ({"options": " ro , noatime"}, None, None),  # whitespace: an error, see test_messages
    ({"automount": True}, "noatime,nofail,x-systemd.automount", True),
    ({"options": "x-systemd.automount"}, "x-systemd.automount,nofail", True),
    ({"options": "ro", "selinux_context": "system_u:object_r:x_t:s0", "automount": "yes"},
     'ro,nofail,x-systemd.automount,context="system_u:object_r:x_t:s0"', True),
])
def test_options(entry, options, automount):
    entry = dict(entry, tag="t", path="/m")
    if options is None:
        assert errors(entry)
        return
    result = mount(entry, default_options="noatime", default_mode="0711")
    assert (result["options"], result["automount"], result["mode"]) == (options, automount, "0711")


def test_owner_group_mode_kept():
    assert mount({"tag": "t", "path": "/m", "owner": "u", "group": "g", "mode": "0700", "state": "present"}) == {
        "tag": "t", "path": "/m", "state": "present", "options": "defaults,nofail", "automount": False,
        "owner": "u", "group": "g", "mode": "0700"}


# ---------------------------------------------------------------- refusals


SHARES = [
    {"tag": "a", "path": "/a", "state": "mounted", "same": [],
     "fstab": [{"fstype": "ext4", "line": "/dev/x /a ext4 defaults 0 0"}, {"fstype": "nfs", "line": "h:/ /a nfs rw 0 0"},
               {"fstype": "virtiofs", "line": "a /a virtiofs defaults 0 0"}],
     "foreign": [{"fstype": "ext4", "source": "/dev/x"}, {"fstype": "tmpfs", "source": "tmpfs"}]},
    {"tag": "b", "path": "/b", "state": "unmounted", "fstab": [{"fstype": "ext4", "line": "L"}], "foreign": [], "same": []},
    {"tag": "c", "path": "/c", "state": "mounted", "fstab": [], "foreign": [], "same": [{"source": "c"}]},
    {"tag": "d", "path": "/d", "state": "absent", "fstab": [{"fstype": "xfs", "line": "M"}], "foreign": [], "same": []},
]
FSTAB_A = ("/etc/fstab already has a line for /a that is not virtiofs (/dev/x /a ext4 defaults 0 0 | h:/ /a nfs rw 0 0). "
           "This role only manages virtiofs lines: remove that line yourself or choose another path.")
FOREIGN_A = "/a is a mount point of ext4, tmpfs (/dev/x, tmpfs), not of virtiofs. Unmount it yourself or choose another path."
FSTAB_D = ("/etc/fstab already has a line for /d that is not virtiofs (M). This role only manages virtiofs lines: remove that line "
           "yourself or choose another path.")


def not_offered(tag, tags):
    return (f"tag {tag} not offered to this guest: is the share defined and the domain restarted? (the kernel lists the tags of "
            f"its virtio-fs devices in /sys/fs/virtiofs: {tags}; a share added to the persistent domain definition only appears "
            "after a full shutdown and start of the domain.)")


def test_refusals_without_a_tag_list():
    assert gp.refusals(SHARES, None) == [FSTAB_A, FOREIGN_A, FSTAB_D]


def test_refusals_with_tag_lists():
    assert gp.refusals(SHARES, []) == [FSTAB_A, FOREIGN_A, not_offered("a", "none"), FSTAB_D]
    assert gp.refusals(SHARES, ["x", "y"]) == [FSTAB_A, FOREIGN_A, not_offered("a", "x, y"), FSTAB_D]
    assert gp.refusals(SHARES, ["a"]) == [FSTAB_A, FOREIGN_A, FSTAB_D]
    assert gp.refusals([], ["a"]) == []


# ---------------------------------------------------------------- mount failures


FAILED = {"failed": True, "results": [
    {"failed": True, "msg": "mount  failed:\n  bad\tthing ", "_virtiofs_guest_share": {"tag": "a.b", "path": "/a", "options": "o"}},
    {"failed": False, "_virtiofs_guest_share": {"tag": "x", "path": "/x", "options": "o"}},
    {"failed": True, "_virtiofs_guest_share": {"tag": "e", "path": "/e", "options": "o"}},
    {"skipped": True},
    {"failed": True, "msg": "no share"},
]}
UNKNOWN = {"tag": "?", "path": "?", "options": "?"}


def test_mount_failures_from_the_kernel_log():
    before = "virtio-fs: tag <a.b> not found\n"
    after = before + "virtio-fs: tag <a.b> not found\nvirtio-fs: tag <aXb> not found\n"
    assert gp.mount_failures(FAILED, before, after, None) == [
        {"share": FAILED["results"][0]["_virtiofs_guest_share"], "error": "mount failed: bad thing", "not_offered": True},
        {"share": FAILED["results"][2]["_virtiofs_guest_share"], "error": "unknown error", "not_offered": False},
        {"share": UNKNOWN, "error": "no share", "not_offered": False},
    ]
    # the same count before and after: not this run's mount
    assert [f["not_offered"] for f in gp.mount_failures(FAILED, after, after, None)] == [False, False, False]


def test_mount_failures_from_the_tag_list():
    assert [f["not_offered"] for f in gp.mount_failures(FAILED, "", "", ["a.b"])] == [False, True, False]
    assert [f["not_offered"] for f in gp.mount_failures(FAILED, "", "", [])] == [True, True, False]


def test_mount_failure_of_a_single_task():
    assert gp.mount_failures({"failed": True, "msg": "one"}, "", "", None) == [{"share": UNKNOWN, "error": "one", "not_offered": False}]
    assert gp.mount_failures({"failed": True, "msg": "x", "s": {"tag": "t"}}, "", "", [], share_key="s") == [
        {"share": {"tag": "t"}, "error": "x", "not_offered": True}]


# ------------------------------------------------------------------ mounts_from_host_shares

def test_mounts_from_host_shares_defaults_keys_and_absent_shares():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import mounts_from_host_shares
    shares = [
        {"domain": "web01", "tag": "www", "source": "/srv/www"},
        {"domain": "web01", "tag": "assets", "mount_path": "/srv/assets", "mount_options": "ro,nofail",
         "mount_owner": None, "mount_automount": False},
        {"domain": "web01", "tag": "old", "state": "absent", "mount_path": "/srv/old"},
        {"domain": "web01", "tag": "kept", "state": "absent", "mount_state": "present"},
        {"domain": "web01", "tag": "skip", "mount": "no"},
        {"domain": "web01", "tag": ""},
        {"domain": "db01", "tag": "other"},
        "not a mapping",
        {"tag": "nodomain"},
    ]
    assert mounts_from_host_shares(shares, "web01") == [
        {"tag": "www", "path": "/mnt/www", "state": "mounted"},
        {"tag": "assets", "path": "/srv/assets", "state": "mounted", "options": "ro,nofail", "automount": False},
        {"tag": "old", "path": "/srv/old", "state": "absent"},
        {"tag": "kept", "path": "/mnt/kept", "state": "present"},
    ]
    assert mounts_from_host_shares(shares, "db01") == [{"tag": "other", "path": "/mnt/other", "state": "mounted"}]
    assert mounts_from_host_shares(None, "web01") == [] and mounts_from_host_shares([], "web01") == []


def test_mounts_from_host_shares_takes_every_mount_key_without_its_prefix():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import (
        SHARE_MOUNT_KEYS, mounts_from_host_shares)
    share = {"domain": "d", "tag": "t", "mount": True, **{f"mount_{k}": f"v-{k}" for k in SHARE_MOUNT_KEYS}}
    (mount,) = mounts_from_host_shares([share], "d")
    assert mount == {"tag": "t", "path": "/mnt/t", "state": "mounted", **{k: f"v-{k}" for k in SHARE_MOUNT_KEYS}}


# ---------------------------------------------------------------- the role's YAML messages, rendered as the role does


def test_refusals_as_the_role_reports_them():
    # main.yml: guest_refusals(_virtiofs_guest_shares, _virtiofs_guest_tags), joined, then "Nothing was changed."
    problems = gp.refusals(SHARES, None)
    fails, msg = role_task("guest", "main.yml", "Refuse paths of other file systems and tags the kernel does not offer",
                           _problems=problems, _virtiofs_guest_mounts=SHARES)
    assert fails and msg == f"{FSTAB_A} {FOREIGN_A} {FSTAB_D} Nothing was changed."
    assert "This role only manages virtiofs lines: remove that line yourself or choose another path." in msg
    assert "/a is a mount point of ext4, tmpfs (/dev/x, tmpfs), not of virtiofs. Unmount it yourself or choose another path." in msg
    fails = role_task("guest", "main.yml", "Refuse paths of other file systems and tags the kernel does not offer",
                      _problems=gp.refusals(SHARES[2:3], ["c"]), _virtiofs_guest_mounts=SHARES)[0]
    assert not fails


NOT_LINUX = ("virtiofs.libvirt.guest mounts virtio-fs shares on Linux guests only; this host runs Win32NT. Windows guests use"
             " WinFsp and the virtio-win viofs service instead.")


def test_a_guest_that_is_not_linux_is_refused():
    fails, msg = role_task("guest", "facts.yml", "Refuse guests that are not Linux (known from gathered facts)",
                           ansible_facts={"system": "Win32NT"})
    assert fails and msg == NOT_LINUX
    # guest_info's answer (facts not gathered); the message is the same anchor (ansible_facts as a play without
    # gather_facts leaves it resolves lazily in a play, not in this templar, so it names the system here too)
    fails, msg = role_task("guest", "facts.yml", "Refuse guests that are not Linux",
                           _virtiofs_guest_info={"system": "Win32NT"}, ansible_facts={"system": "Win32NT"})
    assert fails and msg == NOT_LINUX
    assert not role_task("guest", "facts.yml", "Refuse guests that are not Linux (known from gathered facts)", ansible_facts={})[0]
    assert not role_task("guest", "facts.yml", "Refuse guests that are not Linux", _virtiofs_guest_info={"system": "Linux"},
                         ansible_facts={})[0]


def test_automount_without_systemd_is_refused():
    mounts = gp.guest_plan([{"tag": "a", "path": "/a", "automount": True}, {"tag": "b", "path": "/b"},
                            {"tag": "c", "path": "/c", "automount": True, "state": "present"}])["mounts"]
    fails, msg = role_task("guest", "facts.yml", "Refuse automount without systemd", _virtiofs_guest_mounts=mounts,
                           _virtiofs_guest_info={"service_mgr": "openrc"})
    assert fails and msg == ("/a, /c: automount (x-systemd.automount) needs systemd, but this guest's service manager is openrc;"
                             " set automount to false.")
    assert not role_task("guest", "facts.yml", "Refuse automount without systemd", _virtiofs_guest_mounts=mounts,
                         _virtiofs_guest_info={"service_mgr": "systemd"})[0]


def test_a_kernel_without_virtiofs_is_refused():
    mounts = gp.guest_plan([{"tag": "a", "path": "/a"}])["mounts"]
    info = {"kernel": "4.19.0-27-amd64", "virtiofs_registered": False}
    fails, msg = role_task("guest", "facts.yml", "Fail when the kernel cannot mount virtiofs", _virtiofs_guest_mounts=mounts,
                           _virtiofs_guest_info=info, _virtiofs_guest_info_after={"virtiofs_registered": False},
                           _virtiofs_guest_modprobe={"rc": 1, "stderr": "modprobe: FATAL: Module virtiofs not found\n"})
    assert fails and msg == (
        "This guest kernel (4.19.0-27-amd64) cannot mount virtiofs: 'virtiofs' is not in /proc/filesystems and `modprobe virtiofs`"
        " failed (modprobe: FATAL: Module virtiofs not found). virtio-fs needs Linux >= 5.4 built with CONFIG_VIRTIO_FS (module"
        " virtiofs, with FUSE): install such a kernel (Debian/Ubuntu linux-image-amd64 or linux-image-cloud-amd64, RHEL/Fedora"
        " kernel-core plus kernel-modules-core), reboot into it and run again.")
    fails, msg = role_task("guest", "facts.yml", "Fail when the kernel cannot mount virtiofs", _virtiofs_guest_mounts=mounts,
                           _virtiofs_guest_info=info, _virtiofs_guest_modprobe={"rc": 127}, ansible_check_mode=True)
    assert fails and "failed (rc 127, modprobe not found?)" in msg
    assert not role_task("guest", "facts.yml", "Fail when the kernel cannot mount virtiofs", _virtiofs_guest_mounts=mounts,
                         _virtiofs_guest_info=info, _virtiofs_guest_info_after={"virtiofs_registered": True},
                         _virtiofs_guest_modprobe={"rc": 0, "stderr": ""})[0]


SHARE_A = {"tag": "a", "path": "/mnt/a", "options": "defaults,nofail"}
MOUNT_ERROR = {"failed": True, "results": [
    {"failed": True, "msg": "Error mounting /mnt/a: mount: /mnt/a: wrong fs type, bad option, bad superblock on a.",
     "_virtiofs_guest_share": SHARE_A}]}
NOT_FOUND = "[   12.5] virtio-fs: tag <a> not found\n"


def failed_mount_messages(dmesg_after, tags):
    """(not-offered report, other-errors report) as main.yml's rescue reports the failed mount, None where it does not fail."""
    failures = gp.mount_failures(MOUNT_ERROR, "", dmesg_after, tags)
    out = []
    for name in ("Report a tag the guest is not offered", "Report the mount errors"):
        fails, msg = role_task("guest", "main.yml", name, _virtiofs_guest_failures=failures, _virtiofs_guest_mounts=[SHARE_A])
        out.append(msg.strip() if fails else None)
    return out


MOUNT_SAID = "mount said: Error mounting /mnt/a: mount: /mnt/a: wrong fs type, bad option, bad superblock on a."
NOT_OFFERED_REPORT = ('tag a not offered to this guest: is the share defined and the domain restarted? (the guest kernel logged '
                      '"virtio-fs: tag <a> not found" when mounting it on /mnt/a; a share added to the persistent domain definition '
                      f"only appears after a full shutdown and start of the domain. /etc/fstab was left as it was. {MOUNT_SAID})")


def test_a_failed_mount_of_a_tag_the_kernel_logs_as_not_found():
    # a kernel without /sys/fs/virtiofs (tags none) that logged "tag <a> not found" during this run
    assert failed_mount_messages(NOT_FOUND, None)[0] == NOT_OFFERED_REPORT
    assert '/etc/fstab was left as it was. mount said:' in NOT_OFFERED_REPORT


def test_a_failed_mount_of_a_tag_not_in_the_kernels_list():
    assert failed_mount_messages("", ["b"])[0] == NOT_OFFERED_REPORT


def test_a_failed_mount_for_another_reason():
    assert failed_mount_messages("", ["a"]) == [None, (
        "mounting virtiofs tag a on /mnt/a with options defaults,nofail failed: Error mounting /mnt/a: mount: /mnt/a: wrong fs type,"
        " bad option, bad superblock on a.. /etc/fstab was left as it was. Check the options, the guest kernel log (dmesg) and the"
        " virtiofsd log on the host (/var/log/libvirt/qemu/<domain>-fs*-virtiofsd.log).")]
    assert failed_mount_messages("", None)[0] is None


def test_not_a_virtiofs_mount_after_mounting():
    # guest_info's shares after mounting: a share whose path shows no virtiofs mount of its tag ("same" is empty)
    shares = [{"tag": "a", "path": "/mnt/a", "state": "mounted", "same": [], "at_path": [{"fstype": "tmpfs", "source": "tmpfs"}]},
              {"tag": "b", "path": "/mnt/b", "state": "mounted", "same": [], "at_path": []},
              {"tag": "c", "path": "/mnt/c", "state": "mounted", "same": [{"source": "c"}], "at_path": [{"fstype": "virtiofs", "source": "c"}]}]
    name = "Check that findmnt shows a virtiofs mount of each tag on its path"
    fails, msg = role_task("guest", "main.yml", name, _virtiofs_guest_info_after_mount={"shares": shares}, _virtiofs_guest_shares=shares,
                           _virtiofs_guest_mounted={"changed": True}, _virtiofs_guest_mounts=shares)
    assert fails and msg == ("/mnt/a is not a virtiofs mount of tag a after mounting; findmnt shows tmpfs tmpfs. /mnt/b is not a"
                             " virtiofs mount of tag b after mounting; findmnt shows nothing mounted there.  Check the guest kernel"
                             " log (dmesg) and the virtiofsd log on the host.")
    assert not role_task("guest", "main.yml", name, _virtiofs_guest_info_after_mount={"shares": shares[2:]},
                         _virtiofs_guest_shares=shares[2:], _virtiofs_guest_mounted={"changed": True}, _virtiofs_guest_mounts=shares)[0]


def test_mount_keys_are_typed_as_the_role_declares_them():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import guest_plan as plan_of
    result = plan_of([{"tag": "a", "path": "/mnt/a", "nofail": "t"}, {"tag": "b", "path": "/mnt/b", "automount": "maybe"}])
    assert result["errors"] == [
        'virtiofs_guest_mounts[0] (tag "a", path "/mnt/a"): nofail must be true or false, got "t" (Ansible\'s argument check'
        " reads t as true, its bool filter as false: write true or false)",
        'virtiofs_guest_mounts[1] (tag "b", path "/mnt/b"): automount must be true or false, got "maybe"']
    # null is the default: nofail kept, no automount
    result = plan_of([{"tag": "a", "path": "/mnt/a", "nofail": None, "automount": None, "options": None}])
    assert result["errors"] == [] and result["mounts"][0]["options"] == "defaults,nofail"
    assert result["mounts"][0]["automount"] is False
    # "yes" as the role's argument check reads it
    assert plan_of([{"tag": "a", "path": "/mnt/a", "automount": "yes"}])["mounts"][0]["automount"] is True


def test_mount_point_mode_is_checked_as_a_created_source_is():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import guest_plan as plan_of
    result = plan_of([{"tag": "a", "path": "/mnt/a", "mode": 755}, {"tag": "b", "path": "/mnt/b", "mode": "rwx"},
                      {"tag": "c", "path": "/mnt/c", "mode": 0}])
    assert result["errors"] == [
        'virtiofs_guest_mounts[0] (tag "a", path "/mnt/a"): mode 755 of the mount point directory is the decimal number 755'
        " (octal 1363), not the octal mode 0755: quote it, mode: '0755'",
        "virtiofs_guest_mounts[1] (tag \"b\", path \"/mnt/b\"): mode 'rwx' of the mount point directory is neither octal"
        " (e.g. '0755') nor symbolic (e.g. 'u=rwx,g=rx,o=')"]
    assert result["mounts"][2]["mode"] == 0  # kept, not replaced by the default
