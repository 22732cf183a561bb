# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host role's plan: every message word for word, every field of the plan."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _host_plan as hp

from role_tasks import facts as role_facts, refusal as role_task

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = yaml.safe_load((ROOT / "roles/host/defaults/main.yml").read_text())
ROLE_SHARE_KEYS = ()  # the role calls the filter without extra keys (roles/host/tasks/validate.yml)
DEFAULT_WRAPPERS = {"default": {"path": "/opt/virtiofsd-rust/virtiofsd.sh",
                                "options": {"inode_file_handles": "prefer", "announce_submounts": True}}}


def params(**kw):
    """The role defaults (templates resolved as the role would) with ``kw`` on top."""
    out = dict(DEFAULTS, virtiofs_host_wrappers=DEFAULT_WRAPPERS)
    out.update(kw)
    return out


def plan(**kw):
    return hp.host_plan(params(**kw), role_share_keys=ROLE_SHARE_KEYS)


def share_errors(*shares, **kw):
    result = plan(virtiofs_host_shares=list(shares), **kw)
    assert result["errors"]["wrappers"] == []
    return result["errors"]["shares"]


def wrapper_errors(wrappers, **kw):
    return plan(virtiofs_host_wrappers=wrappers, **kw)["errors"]["wrappers"]


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("value,expected", [
    (True, True), (False, False), ("yes", True), ("On", True), ("TRUE", True), ("1", True), (1, True),
    ("no", False), ("off", False), ("0", False), (0, False), (None, False), ("maybe", False), (2, False), (1.0, True),
    ([1], False),
])
def test_to_bool_is_ansibles_bool_filter(value, expected):
    assert hp.to_bool(value) is expected


def test_text_quoted_is_list():
    assert hp.text(None) == "" and hp.text(0) == "" and hp.text("", "x") == "x" and hp.text(12) == "12"
    assert hp.quoted("a\"b") == '"a\\"b"' and hp.quoted("é") == '"\\u00e9"' and hp.quoted(5) == "5"
    assert hp.is_list([1]) and hp.is_list(()) and not hp.is_list("ab") and not hp.is_list({"a": 1}) and not hp.is_list(5)
    assert not hp.is_list(b"x")


def test_share_error_is_the_share_modules_check():
    assert hp.share_error({"tag": "d", "source": "/srv"}) == ""
    assert hp.share_error({"tag": "d", "source": "/srv", "thread_pool_size": " 4 "}) == ""
    assert hp.share_error("d") == "a share must be a dict (tag, source, ...), got 'd'"
    assert hp.share_error({"tag": "d", "source": "/srv", "queue_size": "0"}) == "share 'd': queue_size must be an integer >= 1, got 0"


# ---------------------------------------------------------------- the wrapper profiles


def test_wrappers_not_a_dict():
    assert wrapper_errors(["a"]) == ["virtiofs_host_wrappers must be a dict of profile name -> {path, options}, got ['a']"]
    assert wrapper_errors("x") == ["virtiofs_host_wrappers must be a dict of profile name -> {path, options}, got x"
                                   """ (a string: with -e, pass the dict as JSON, -e '{"virtiofs_host_wrappers": {...}}')"""]


@pytest.mark.parametrize("wrappers,expected", [
    ({"bad name!": {"path": "/opt/w.sh"}}, ["virtiofs_host_wrappers.bad name!: profile names may only contain letters, digits, . _ -"]),
    ({"n": "str"}, ["virtiofs_host_wrappers.n: must be a dict with at least path, got str"]),
    ({"n": {}}, ["virtiofs_host_wrappers.n: path is missing; set the absolute path of the wrapper, e.g. /opt/virtiofsd-rust/virtiofsd-n.sh"]),
    ({"n": {"path": "rel.sh"}}, ['virtiofs_host_wrappers.n: path "rel.sh" must be an absolute, normalised path']),
    ({"n": {"path": "/a//b.sh"}}, ['virtiofs_host_wrappers.n: path "/a//b.sh" must be an absolute, normalised path']),
    ({"n": {"path": "/opt/virtiofsd-rust/virtiofsd"}},
     ["virtiofs_host_wrappers.n: path /opt/virtiofsd-rust/virtiofsd is the daemon itself; give the wrapper its own file name, e.g. "
      "/opt/virtiofsd-rust/virtiofsd-n.sh"]),
    ({"a": {"path": "/w.sh"}, "b": {"path": "/w.sh"}},
     ["virtiofs_host_wrappers.b: path /w.sh is used by another profile; each profile needs its own file"]),
    ({"n": {"path": "/w.sh", "state": "gone"}}, ['virtiofs_host_wrappers.n: state "gone" is not present or absent']),
    ({"n": {"path": "/w.sh", "options": "x"}},
     ["virtiofs_host_wrappers.n: options must be a dict of virtiofsd options (e.g. {inode_file_handles: prefer}), got x"]),
    ({"n": {"path": "/w.sh", "extra_args": "--x"}}, ['virtiofs_host_wrappers.n: extra_args must be a list of arguments, e.g. ["--no-readdirplus"]']),
    ({"n": {"path": "/w.sh", "extra_args": {"a": 1}}}, ['virtiofs_host_wrappers.n: extra_args must be a list of arguments, e.g. ["--no-readdirplus"]']),
    ({"n": {"path": "/w.sh", "extra_args": 5}}, ['virtiofs_host_wrappers.n: extra_args must be a list of arguments, e.g. ["--no-readdirplus"]']),
    ({"n": {"path": "/w.sh", "option": {}, "zz": 1}},
     ["virtiofs_host_wrappers.n: unknown keys option, zz; a profile has path, options, extra_args, state and backup"]),
])
def test_wrapper_messages(wrappers, expected):
    assert wrapper_errors(wrappers) == expected


def test_every_group_of_problems_is_reported_at_once():
    result = plan(virtiofs_host_wrappers={"x y": {"path": "rel"}, "n": 5},
                  virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "wrapper": "nope"}],
                  virtiofs_host_virtiofsd_method="url")
    assert result["failure"] == [
        "virtiofs.libvirt.host: bad wrapper profiles:",
        "virtiofs_host_wrappers.x y: profile names may only contain letters, digits, . _ -",
        'virtiofs_host_wrappers.x y: path "rel" must be an absolute, normalised path',
        "virtiofs_host_wrappers.n: must be a dict with at least path, got 5",
        "virtiofs.libvirt.host: bad virtiofs_host_shares:",
        f"{W}: wrapper profile \"nope\" is not defined in virtiofs_host_wrappers (profiles: x y); add it or set binary_path",
        "virtiofs.libvirt.host: bad virtiofsd installation settings:",
        "virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_url"
        " (the release zip, e.g. https://gitlab.com/virtio-fs/virtiofsd/-/releases)",
        "virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_checksum (sha256:<hex> of the archive you reviewed)",
    ]


def test_wrappers_normalised():
    result = plan(virtiofs_host_wrappers={
        "default": {"path": "/opt/w/v.sh", "options": {"readonly": True}, "extra_args": ["--no-readdirplus"], "backup": "yes"},
        "old": {"path": "/opt/w/old.sh", "state": "absent", "options": None},
        "other": {"path": "/srv/o.sh", "state": ""},
    })
    assert result["failure"] is None
    assert result["wrappers"] == [
        {"name": "default", "path": "/opt/w/v.sh", "state": "present", "options": {"readonly": True}, "extra_args": ["--no-readdirplus"], "backup": True},
        {"name": "old", "path": "/opt/w/old.sh", "state": "absent", "options": {}, "extra_args": [], "backup": False},
        {"name": "other", "path": "/srv/o.sh", "state": "present", "options": {}, "extra_args": [], "backup": False},
    ]
    assert [w["name"] for w in result["wrappers_present"]] == ["default", "other"]
    assert [w["name"] for w in result["wrappers_absent"]] == ["old"]
    assert result["wrapper_paths"] == ["/opt/w/v.sh", "/srv/o.sh"]
    assert result["wrapper_dirs"] == ["/opt/w", "/srv"]
    assert result["remove"] is True


def test_daemon_absent_removes_every_profile():
    result = plan(virtiofs_host_virtiofsd_state="absent")
    assert [w["state"] for w in result["wrappers"]] == ["absent"]
    assert result["wrappers_present"] == [] and result["wrapper_paths"] == [] and result["wrapper_dirs"] == []
    assert result["remove"] is True
    assert result["virtiofsd"] == {"state": "absent", "method": "package", "install": False, "install_package": False,
                                   "remove": True, "daemon": "/opt/virtiofsd-rust/virtiofsd", "install_dir_prefix": "/opt/virtiofsd-rust/"}


# ---------------------------------------------------------------- the shares


def test_shares_not_a_list():
    assert share_errors_of("x") == ["virtiofs_host_shares must be a list of shares ({domain, tag, source, ...}), got x"
                                    """ (a string: with -e, pass the list as JSON, -e '{"virtiofs_host_shares": [...]}')"""]
    assert share_errors_of({"a": 1}) == ["virtiofs_host_shares must be a list of shares ({domain, tag, source, ...}), got {'a': 1}"]


def share_errors_of(shares):
    return plan(virtiofs_host_shares=shares)["errors"]["shares"]


W = 'virtiofs_host_shares[0] (domain "a", tag "t")'


@pytest.mark.parametrize("share,expected", [
    ("str", ["virtiofs_host_shares[0]: must be a dict with at least domain, tag and source, got str"]),
    ({"tag": "t", "source": "/s"},
     ['virtiofs_host_shares[0] (domain "", tag "t"): domain is missing; set the libvirt domain name the share belongs to']),
    ({"domain": "a", "source": "/s"},
     ['virtiofs_host_shares[0] (domain "a", tag ""): tag is missing; set the mount tag the guest uses (1-36 bytes)']),
    ({"domain": "a", "tag": "t" * 37, "source": "/s"},
     [f'virtiofs_host_shares[0] (domain "a", tag "{"t" * 37}"): tag \'{"t" * 37}\' is 37 bytes long but a virtio-fs tag holds at most 36 '
      "bytes: use a shorter tag"]),
    ({"domain": "a", "tag": "web data,v2", "source": "/s"},
     ["virtiofs_host_shares[0] (domain \"a\", tag \"web data,v2\"): tag 'web data,v2' contains ' ,': a tag may only contain "
      "A-Z a-z 0-9 . _ : @ + = / - (the guest writes it into /etc/fstab and mount options); rename the share"]),
    ({"domain": "a", "tag": "t"}, [f"{W}: source is missing; set the host directory to share"]),
    ({"domain": "a", "tag": "t", "source": "srv/x"}, [f'{W}: source "srv/x" must be an absolute path']),
    ({"domain": "a", "tag": "t", "source": "/s", "wrapper": "default", "binary_path": "/usr/bin/true"},
     [f"{W}: set either wrapper (a profile name) or binary_path, not both"]),
    ({"domain": "a", "tag": "t", "source": "/s", "binary_path": "bin/v"}, [f'{W}: binary_path "bin/v" must be an absolute path']),
    ({"domain": "a", "tag": "t", "source": "/s", "wrapper": "nope"},
     [f'{W}: wrapper profile "nope" is not defined in virtiofs_host_wrappers (profiles: default); add it or set binary_path']),
    ({"domain": "a", "tag": "t", "source": "/s", "mount_path": "mnt/x"}, [f'{W}: mount_path "mnt/x" must be absolute, e.g. /mnt/x']),
    ({"domain": "a", "tag": "t", "source": "/s", "mount_path": 5}, [f'{W}: mount_path "5" must be absolute, e.g. /5']),
    ({"domain": "a", "tag": "t", "source": "/s", "queue_size": 0}, [f"{W}: share 't': queue_size must be an integer >= 1, got 0"]),
    ({"domain": "a", "tag": "t", "source": "/s", "binary_path": "/opt//v"},
     [f"{W}: share 't': binary_path '/opt//v' is not in normal form (libvirt would store '/opt/v'): write it as '/opt/v'"]),
])
def test_share_messages(share, expected):
    assert share_errors(share) == expected


def test_share_module_check_only_without_other_problems():
    # the relative source is reported; the share module's own check would repeat it, so it does not run
    assert share_errors({"domain": "a", "tag": "t", "source": "srv", "queue_size": 0}) == [f'{W}: source "srv" must be an absolute path']


def test_same_share_twice_and_missing_domain():
    assert share_errors({"domain": "a", "tag": "x", "source": "/x"}, {"domain": "a", "tag": "x", "source": "/y"},
                        {"tag": "y", "source": "/y"}) == [
        'virtiofs_host_shares[1] (domain "a", tag "x"): the same domain and tag appear twice; one entry per share',
        'virtiofs_host_shares[2] (domain "", tag "y"): domain is missing; set the libvirt domain name the share belongs to',
    ]


def test_profile_being_removed():
    expected = [f"{W}: wrapper profile default is being removed (state absent, or virtiofs_host_virtiofsd_state=absent); remove "
                "the share too (state: absent) or pick another profile"]
    assert share_errors({"domain": "a", "tag": "t", "source": "/s"}, virtiofs_host_virtiofsd_state="absent") == expected
    assert share_errors({"domain": "a", "tag": "t", "source": "/s"},
                        virtiofs_host_wrappers={"default": {"path": "/w.sh", "state": "absent"}}) == expected


def test_no_profiles_at_all():
    assert share_errors({"domain": "a", "tag": "t", "source": "/s"}, virtiofs_host_wrappers={}) == [
        f'{W}: wrapper profile "default" is not defined in virtiofs_host_wrappers (profiles: none); add it or set binary_path']


def test_removed_share_needs_no_source_and_any_tag():
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "any tag,", "state": "absent", "mount": False}])
    assert result["failure"] is None
    assert result["shares"] == [{"domain": "a", "tag": "any tag,", "state": "absent", "source": "", "binary_path": "",
                                 "module": {"tag": "any tag,", "state": "absent"}}]
    # the guest playbook would unmount it at /mnt/any tag, which the guest role refuses
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "any tag,", "state": "absent"}])
    assert result["errors"]["shares"] == [
        'virtiofs_host_shares[0] (domain "a", tag "any tag,"): the guest playbook would unmount this share at /mnt/any tag,,'
        " which the guest role refuses (the tag is not fit for a path); set mount: false or a mount_path"]
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "any tag,", "state": "absent", "mount_path": "/mnt/old"}])
    assert result["failure"] is None


def test_shares_normalised():
    result = plan(
        virtiofs_host_wrappers={"default": {"path": "/w/d.sh"}, "ro": {"path": "/w/ro.sh"}},
        virtiofs_host_source_owner="qemu", virtiofs_host_source_mode="0700",
        virtiofs_host_shares=[
            {"domain": "b", "tag": "x", "source": "/srv/x", "cache": "always", "mount_path": "/m", "create_source": True,
             "source_group": "kvm"},
            {"domain": "a", "tag": "y", "source": "/srv/y", "wrapper": "ro", "readonly": True, "create_source": "no"},
            {"domain": "b", "tag": "z", "source": "/srv/z", "binary_path": "/usr/bin/v", "create_source": "yes", "source_mode": "0750"},
            {"domain": "a", "tag": "gone", "state": "absent", "create_source": True},
        ])
    assert result["failure"] is None
    assert result["shares"] == [
        {"domain": "b", "tag": "x", "state": "present", "source": "/srv/x", "binary_path": "/w/d.sh",
         "module": {"tag": "x", "source": "/srv/x", "cache": "always", "binary_path": "/w/d.sh", "create_source": True,
                    "owner": "qemu", "group": "kvm", "mode": "0700"}},
        {"domain": "a", "tag": "y", "state": "present", "source": "/srv/y", "binary_path": "/w/ro.sh",
         "module": {"tag": "y", "source": "/srv/y", "readonly": True, "binary_path": "/w/ro.sh"}},
        {"domain": "b", "tag": "z", "state": "present", "source": "/srv/z", "binary_path": "/usr/bin/v",
         "module": {"tag": "z", "source": "/srv/z", "binary_path": "/usr/bin/v", "create_source": True, "owner": "qemu",
                    "group": "root", "mode": "0750"}},
        {"domain": "a", "tag": "gone", "state": "absent", "source": "", "binary_path": "", "module": {"tag": "gone", "state": "absent"}},
    ]
    assert result["domains"] == ["b", "a"]
    assert result["share_domains"] == [
        {"name": "a", "shares": [result["shares"][1]["module"], result["shares"][3]["module"]]},
        {"name": "b", "shares": [result["shares"][0]["module"], result["shares"][2]["module"]]},
    ]


# ---------------------------------------------------------------- installation settings and the rest


@pytest.mark.parametrize("kw,expected", [
    ({"virtiofs_host_virtiofsd_method": "url"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_url (the release zip, e.g. "
     "https://gitlab.com/virtio-fs/virtiofsd/-/releases); virtiofs_host_virtiofsd_method=url needs "
     "virtiofs_host_virtiofsd_checksum (sha256:<hex> of the archive you reviewed)"),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "https://x"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_checksum (sha256:<hex> of the "
     "archive you reviewed)"),
    ({"virtiofs_host_virtiofsd_method": "source"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_method=source needs virtiofs_host_virtiofsd_source_dir, "
     "virtiofs_host_virtiofsd_source_archive or virtiofs_host_virtiofsd_crate_version"),
    ({"virtiofs_host_virtiofsd_method": "source", "virtiofs_host_virtiofsd_crate_version": "1.13.2"}, None),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "https://x",
      "virtiofs_host_virtiofsd_checksum": "sha256:" + "0" * 64}, None),
    # the virtiofsd module's own checks, before anything is installed (named by the role variable)
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "https://x",
      "virtiofs_host_virtiofsd_checksum": "sha256:0"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_checksum: checksum 'sha256:0' is not a sha256 digest: expected "
     "sha256: followed by 64 hex digits"),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "ftp://x/v.zip",
      "virtiofs_host_virtiofsd_checksum": "md5:abc", "virtiofs_host_virtiofsd_version": ">=banana"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_version: version: not a version requirement: '>=banana' (expected X,"
     " X.Y or X.Y.Z, optionally after ==, >=, <=, > or <, e.g. 1.13.2 or >=1.10); virtiofs_host_virtiofsd_checksum: "
     "checksum algorithm 'md5' is not supported: only sha256 is (sha256:<64 hex digits>); virtiofs_host_virtiofsd_url: "
     "url 'ftp://x/v.zip' must start with https:// (or http:// with virtiofs_host_virtiofsd_allow_http=true)"),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "http://x/v.zip",
      "virtiofs_host_virtiofsd_checksum": "sha256:" + "0" * 64},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_url: url 'http://x/v.zip' uses plain http: use https, or set "
     "virtiofs_host_virtiofsd_allow_http=true to accept an unencrypted download (the checksum still protects the content)"),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_url": "http://x/v.zip",
      "virtiofs_host_virtiofsd_allow_http": True, "virtiofs_host_virtiofsd_checksum": "sha256:" + "0" * 64}, None),
    ({"virtiofs_host_virtiofsd_method": "source", "virtiofs_host_virtiofsd_source_dir": "/a",
      "virtiofs_host_virtiofsd_source_archive": "/b.tar"},
     "virtiofs.libvirt.host: virtiofs_host_virtiofsd_source_dir: source_dir and source_archive are mutually exclusive"),
    ({"virtiofs_host_virtiofsd_method": "url", "virtiofs_host_virtiofsd_state": "absent"}, None),
])
def test_install_settings(kw, expected):
    assert plan(**kw)["failure"] == expected


def test_share_and_install_problems_are_reported_together():
    result = plan(virtiofs_host_virtiofsd_method="url", virtiofs_host_shares=[{"domain": "a", "tag": "t"}])
    assert result["failure"][:3] == ["virtiofs.libvirt.host: bad virtiofs_host_shares:",
                                     f"{W}: source is missing; set the host directory to share",
                                     "virtiofs.libvirt.host: bad virtiofsd installation settings:"]
    assert len(result["failure"]) == 5 and len(result["errors"]["install"]) == 2


def test_install_problems_alone_are_one_string():
    result = plan(virtiofs_host_virtiofsd_method="url", virtiofs_host_virtiofsd_url="https://x/v.zip")
    assert result["failure"] == ("virtiofs.libvirt.host: virtiofs_host_virtiofsd_method=url needs "
                                 "virtiofs_host_virtiofsd_checksum (sha256:<hex> of the archive you reviewed)")


def test_install_dir_and_binary_name_are_named_not_the_paths_made_from_them():
    result = plan(virtiofs_host_virtiofsd_install_dir="/opt/virtiofsd-rust/",
                  virtiofs_host_wrappers={"default": {"path": "/opt/virtiofsd-rust//virtiofsd.sh"}})
    assert result["failure"] == ('virtiofs.libvirt.host: virtiofs_host_virtiofsd_install_dir "/opt/virtiofsd-rust/" '
                                 'must be an absolute, normalised path (e.g. /opt/virtiofsd-rust)')
    result = plan(virtiofs_host_virtiofsd_binary_name="../bin/virtiofsd")
    assert result["failure"] == ('virtiofs.libvirt.host: virtiofs_host_virtiofsd_binary_name "../bin/virtiofsd" must be a'
                                 " plain file name (no '/'), e.g. virtiofsd; the directory is virtiofs_host_virtiofsd_install_dir")
    result = plan(virtiofs_host_virtiofsd_binary_name="virtiofsd.sh")
    assert result["failure"] == [
        "virtiofs.libvirt.host: bad wrapper profiles:",
        'virtiofs_host_wrappers.default: path /opt/virtiofsd-rust/virtiofsd.sh is where virtiofs_host_virtiofsd_binary_name'
        ' "virtiofsd.sh" puts the daemon; give the wrapper its own file name'
        ' (e.g. /opt/virtiofsd-rust/virtiofsd-default.sh)'
        " or set another binary_name"]


def test_every_problem_of_one_share_entry_is_reported():
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "thread_pool_size": -1,
                                         "queue_size": 1000, "openfiles": 0, "binary_path": "/opt//x.sh"}])
    lines = result["failure"][1:]
    assert result["failure"][0] == "virtiofs.libvirt.host: bad virtiofs_host_shares:"
    for word in ("thread_pool_size", "queue_size", "openfiles", "binary_path"):
        assert sum(word in line for line in lines) == 1, (word, lines)


def test_every_bad_extra_args_item_is_reported():
    result = plan(virtiofs_host_wrappers={"default": {"path": "/opt/w/v.sh", "extra_args": [
        "--log-level=bogus", "--cache=sometimes", "--thread-pool-size=abc", "--xattr=maybe"]}})
    lines = result["failure"][1:]
    for item in ("--log-level=bogus", "--cache=sometimes", "--thread-pool-size=abc", "--xattr=maybe"):
        assert sum(item in line for line in lines) == 1, (item, lines)


def test_a_share_option_its_wrapper_profile_also_sets_is_refused():
    result = plan(virtiofs_host_wrappers={"default": {"path": "/opt/w/v.sh", "options": {"cache": "always", "xattr": False}}},
                  virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "cache": "none", "xattr": True,
                                         "thread_pool_size": 2}])
    lines = result["failure"][1:]
    assert result["failure"][0] == "virtiofs.libvirt.host: bad virtiofs_host_shares:"
    assert len(lines) == 2 and all(line.startswith(W) for line in lines)
    assert any("cache" in line and "default" in line for line in lines)
    assert any("xattr" in line for line in lines)
    assert all("comes after libvirt's arguments and wins" in line for line in lines)


def test_defaults_plan():
    result = plan()
    assert result["failure"] is None
    assert result["errors"] == {"variables": [], "wrappers": [], "shares": [], "install": []}
    assert result["shares"] == [] and result["domains"] == [] and result["share_domains"] == []
    assert result["wrapper_paths"] == ["/opt/virtiofsd-rust/virtiofsd.sh"]
    assert result["virtiofsd"] == {"state": "present", "method": "package", "install": True, "install_package": True, "remove": False,
                                   "daemon": "/opt/virtiofsd-rust/virtiofsd", "install_dir_prefix": "/opt/virtiofsd-rust/"}
    assert result["install_packages"] is True and result["remove"] is False
    assert result["apparmor"] == "auto" and result["selinux"] == "auto"


@pytest.mark.parametrize("kw,expected", [
    ({"virtiofs_host_install_packages": False, "virtiofs_host_virtiofsd_method": "source",
      "virtiofs_host_virtiofsd_crate_version": "1"}, False),
    ({"virtiofs_host_install_packages": False, "virtiofs_host_virtiofsd_method": "package"}, True),
    ({"virtiofs_host_install_packages": False, "virtiofs_host_virtiofsd_state": "absent"}, False),
    ({"virtiofs_host_install_packages": False, "virtiofs_host_virtiofsd_state": "absent", "virtiofs_host_extra_packages": ["x"]}, True),
    ({"virtiofs_host_install_packages": True, "virtiofs_host_virtiofsd_state": "absent"}, True),
])
def test_install_packages(kw, expected):
    assert plan(**kw)["install_packages"] is expected


def test_install_dir_prefix_has_one_slash():
    assert plan(virtiofs_host_virtiofsd_install_dir="/opt/v//")["virtiofsd"]["install_dir_prefix"] == "/opt/v/"


def test_missing_variables_take_the_role_defaults():
    result = hp.host_plan({})
    assert result["failure"] is None and result["wrappers"] == [] and result["virtiofsd"]["install_package"] is True


# ---------------------------------------------------------------- confinement


@pytest.mark.parametrize("apparmor,selinux,state,facts,expected", [
    ("auto", "auto", "present", {}, (False, False, False, False)),
    ("auto", "auto", "present", {"apparmor": {"status": "enabled"}}, (True, True, False, False)),
    ("never", "auto", "present", {"apparmor": {"status": "enabled"}}, (False, True, False, False)),
    ("always", "auto", "present", {"apparmor": {"status": "disabled"}}, (True, False, False, False)),
    ("auto", "auto", "present", {"selinux": {"status": "enabled", "mode": "permissive"}}, (False, False, True, True)),
    ("auto", "auto", "absent", {"selinux": {"status": "enabled"}}, (False, False, True, False)),
    ("auto", "never", "present", {"selinux": {"status": "enabled"}}, (False, False, False, False)),
    ("auto", "auto", "present", {"selinux": {"status": "disabled"}, "apparmor": "weird"}, (False, False, False, False)),
])
def test_confinement(apparmor, selinux, state, facts, expected):
    result = hp.confinement(plan(virtiofs_host_apparmor=apparmor, virtiofs_host_selinux=selinux, virtiofs_host_virtiofsd_state=state), facts)
    assert (result["apparmor"], result["apparmor_kernel"], result["selinux"], result["selinux_label"]) == expected


# ------------------------------------------------------------------ selinux_rules

def test_selinux_rules_daemon_type_from_option_reference_or_bin_t():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import host_plan, selinux_rules
    plan = host_plan({"virtiofs_host_wrappers": {"a": {"path": "/opt/virtiofsd-rust/a.sh"},
                                                 "b": {"path": "/opt/w/b.sh"},
                                                 "gone": {"path": "/opt/w/gone.sh", "state": "absent"}}})
    daemon = "/opt/virtiofsd-rust/virtiofsd"
    wrappers = [{"path": "/opt/virtiofsd-rust/a.sh", "type": "wt"}, {"path": "/opt/w/b.sh", "type": "wt"}]
    assert selinux_rules(plan, daemon, "my_t", "system_u:object_r:virtd_exec_t:s0", "wt") == [
        {"path": daemon, "type": "my_t"}] + wrappers
    assert selinux_rules(plan, daemon, "", " system_u:object_r:virtd_exec_t:s0\n", "wt") == [
        {"path": daemon, "type": "virtd_exec_t"}] + wrappers
    assert selinux_rules(plan, daemon, None, "", "wt") == [{"path": daemon, "type": "bin_t"}] + wrappers
    assert selinux_rules(plan, daemon, "", "unlabeled", "wt")[0] == {"path": daemon, "type": "bin_t"}
    # a daemon outside the install directory (the distribution's) is not relabelled; no daemon: wrappers only
    assert selinux_rules(plan, "/usr/libexec/virtiofsd", "", "", "wt") == wrappers
    assert selinux_rules(plan, "/opt/virtiofsd-rust-other/virtiofsd", "", "", "wt") == wrappers
    assert selinux_rules(plan, "", "", "", "wt") == selinux_rules(plan, None, "", "", "wt") == wrappers


def test_selinux_rules_name_the_resolved_paths():
    """File context rules match the real path: the daemon's and the wrappers' rules name the modules' realpath
    (the install-directory test still reads the path as given)."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import host_plan, selinux_rules
    plan = host_plan({"virtiofs_host_wrappers": {"a": {"path": "/opt/virtiofsd-rust/a.sh"},
                                                 "b": {"path": "/opt/w/b.sh"}}})
    rules = selinux_rules(plan, "/opt/virtiofsd-rust/virtiofsd", "my_t", "", "wt",
                          daemon_realpath="/srv/virtiofsd-rust/virtiofsd",
                          wrapper_realpaths={"/opt/virtiofsd-rust/a.sh": "/srv/virtiofsd-rust/a.sh"})
    assert rules == [{"path": "/srv/virtiofsd-rust/virtiofsd", "type": "my_t"},
                     {"path": "/srv/virtiofsd-rust/a.sh", "type": "wt"}, {"path": "/opt/w/b.sh", "type": "wt"}]


# ---------------------------------------------------------------- what the role does with a tag that is not text


def test_a_number_as_tag_is_text_to_the_role():
    # a tag that is not text is refused with the guest role's wording (tag_error, guest-06); tag: 0 is not "missing"
    assert share_errors({"domain": "a", "tag": 12, "source": "/s"}) == [
        'virtiofs_host_shares[0] (domain "a", tag "12"): tag must be a string, got int 12: quote it in YAML']
    assert share_errors({"domain": "a", "tag": 0, "source": "/s"}) == [
        'virtiofs_host_shares[0] (domain "a", tag "0"): tag must be a string, got int 0: quote it in YAML']
    assert share_errors({"domain": "a", "tag": True, "source": "/s"}) == [
        'virtiofs_host_shares[0] (domain "a", tag "True"): tag must be a string, got bool True: quote it in YAML']


# ---------------------------------------------------------------- the role's YAML messages, rendered as the role does


def test_apparmor_refuses_pattern_characters_in_paths():
    # in the paths as given: refused by the plan, before anything changes
    result = plan(virtiofs_host_wrappers={"default": {"path": "/opt/v/virtiofsd-[ro].sh"}, "b": {"path": "/opt/v/b{1}.sh"},
                                          "ok": {"path": "/opt/v/ok.sh"}})
    assert result["errors"]["wrappers"] == [
        f'virtiofs_host_wrappers.{name}: path "{path}" contains a character AppArmor reads as a pattern or cannot quote'
        ' (* ? [ ] { } ^ " \\, a control character); rename it'
        for name, path in (("default", "/opt/v/virtiofsd-[ro].sh"), ("b", "/opt/v/b{1}.sh"))]
    # in a resolved path (a symbolic link to such a name): refused by apparmor.yml
    result = plan(virtiofs_host_wrappers={"default": {"path": "/opt/v/ok.sh"}})
    assert result["failure"] is None
    paths = role_facts("host", "apparmor.yml", "Work out the paths libvirt must be allowed to execute", _virtiofs_host_plan=result,
                       _virtiofs_host_daemon_path="/opt/v/virtiofsd*",
                       _virtiofs_host_wrapper_realpaths={"/opt/v/ok.sh": "/opt/v/b{1}.sh"})["_virtiofs_host_apparmor_paths"]
    assert paths == ["/opt/v/b{1}.sh", "/opt/v/virtiofsd*"]
    fails, msg = role_task("host", "apparmor.yml", "Refuse paths AppArmor would read as patterns", _virtiofs_host_apparmor_paths=paths)
    assert fails and msg == ("virtiofs.libvirt.host: /opt/v/b{1}.sh, /opt/v/virtiofsd* contain characters"
                             ' AppArmor reads as patterns or cannot quote (* ? [ ] { } ^ " or a newline); rename them'
                             " (the paths as AppArmor sees them, with symbolic links resolved).")
    assert not role_task("host", "apparmor.yml", "Refuse paths AppArmor would read as patterns",
                         _virtiofs_host_apparmor_paths=["/opt/v/ok.sh", "/opt/virtiofsd-rust/virtiofsd"])[0]


def test_apparmor_rules_name_the_resolved_paths():
    """AppArmor mediates exec by the resolved path: the rules name the modules' realpath of the daemon and of
    each wrapper written (a wrapper not written yet, in check mode, keeps its path), and the pattern check
    looks at those resolved paths."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    result = plan(virtiofs_host_wrappers={"a": {"path": "/opt/v/a.sh"}, "b": {"path": "/opt/v/b.sh"},
                                          "c": {"path": "/opt/v/c.sh"}})
    written = role_facts("host", "wrappers.yml", "Remember what the wrappers run", _virtiofs_host_wrapper_results={
        "results": [{"path": "/opt/v/a.sh", "realpath": "/srv/v/a.sh", "argv": []},
                    {"path": "/opt/v/b.sh", "realpath": "/srv/v[1]/b.sh", "argv": ["--cache=never"]},
                    {"skipped": True, "item": {"path": "/opt/v/c.sh"}}]})
    assert written["_virtiofs_host_wrapper_realpaths"] == {"/opt/v/a.sh": "/srv/v/a.sh", "/opt/v/b.sh": "/srv/v[1]/b.sh"}
    daemon = role_facts("host", "virtiofsd.yml", "Remember where the daemon is", _virtiofs_host_virtiofsd={
        "path": "/opt/v/virtiofsd", "realpath": "/srv/v/virtiofsd", "version": "1.13.2"})
    assert daemon["_virtiofs_host_virtiofsd_realpath"] == "/srv/v/virtiofsd"
    paths = role_facts("host", "apparmor.yml", "Work out the paths libvirt must be allowed to execute",
                       _virtiofs_host_plan=result, _virtiofs_host_daemon_path="/opt/v/virtiofsd",
                       _virtiofs_host_virtiofsd_realpath="/srv/v/virtiofsd",
                       _virtiofs_host_wrapper_realpaths=written["_virtiofs_host_wrapper_realpaths"])[
        "_virtiofs_host_apparmor_paths"]
    assert paths == ["/srv/v/a.sh", "/srv/v[1]/b.sh", "/opt/v/c.sh", "/srv/v/virtiofsd"]
    fails, msg = role_task("host", "apparmor.yml", "Refuse paths AppArmor would read as patterns",
                           _virtiofs_host_apparmor_paths=paths)
    assert fails and msg.startswith("virtiofs.libvirt.host: /srv/v[1]/b.sh contain characters AppArmor reads as")
    template = (Path(__file__).resolve().parents[4] / "roles" / "host" / "templates" / "apparmor-local.j2").read_text()
    rendered = Templar(loader=DataLoader(), variables={"_virtiofs_host_apparmor_paths": paths[:1] + paths[2:]}).template(
        trust_as_template(template))
    assert rendered.splitlines()[1:] == ['"/srv/v/a.sh" PUx,', '"/opt/v/c.sh" PUx,', '"/srv/v/virtiofsd" PUx,']
    # without the realpaths (an older run's facts): the paths as given
    assert role_facts("host", "apparmor.yml", "Work out the paths libvirt must be allowed to execute",
                      _virtiofs_host_plan=result, _virtiofs_host_daemon_path="/opt/v/virtiofsd")[
        "_virtiofs_host_apparmor_paths"] == ["/opt/v/a.sh", "/opt/v/b.sh", "/opt/v/c.sh", "/opt/v/virtiofsd"]


def test_a_domain_that_does_not_shut_down_in_time():
    given = dict(_virtiofs_host_restart_before={"status": "running"}, _virtiofs_host_restart_domain="vm1",
                 virtiofs_host_restart_timeout=DEFAULTS["virtiofs_host_restart_timeout"])
    fails, msg = role_task("host", "restart_domain.yml", "Give up on a domain that does not shut down",
                           _virtiofs_host_restart_wait={"status": "running"}, virtiofs_host_restart_force=False, **given)
    assert fails and msg == (
        "vm1 did not shut down within 300 s (does the guest handle the ACPI power button, e.g. systemd-logind or acpid?). Its new"
        " configuration is defined but not active. Shut it down yourself, raise virtiofs_host_restart_timeout, or set"
        " virtiofs_host_restart_force=true to power it off after the timeout.")
    assert not role_task("host", "restart_domain.yml", "Give up on a domain that does not shut down",
                         _virtiofs_host_restart_wait={"status": "running"}, virtiofs_host_restart_force="yes", **given)[0]
    assert not role_task("host", "restart_domain.yml", "Give up on a domain that does not shut down",
                         _virtiofs_host_restart_wait={"status": "shutdown"}, virtiofs_host_restart_force=False, **given)[0]


# ---------------------------------------------------------------- unknown share keys, wrapper options


ARGUMENT_SPEC = yaml.safe_load((ROOT / "roles/host/meta/argument_specs.yml").read_text())
SPEC_SHARE_KEYS = ARGUMENT_SPEC["argument_specs"]["main"]["options"]["virtiofs_host_shares"]["options"]
EVERY_KEY = [  # every accepted key once (wrapper and binary_path exclude each other)
    {"domain": "a", "tag": "t", "source": "/srv/t", "state": "present", "wrapper": "default", "readonly": True,
     "cache": "none", "sandbox": "namespace", "xattr": True, "thread_pool_size": 4, "openfiles": 1024, "queue_size": 256,
     "idmap": {"uid": [{"start": 0, "target": 100000, "count": 65536}], "gid": [{"start": 0, "target": 100000, "count": 65536}]},
     "ats": False, "iommu": False, "packed": False, "create_source": True, "source_owner": "qemu", "source_group": "kvm",
     "source_mode": "0750", "mount": True, "mount_path": "/mnt/t", "mount_options": "ro", "mount_state": "mounted",
     "mount_owner": "www-data", "mount_group": "www-data", "mount_mode": "0755", "mount_automount": False, "mount_nofail": True,
     "mount_selinux_context": "system_u:object_r:httpd_sys_content_t:s0"},
    {"domain": "a", "tag": "u", "source": "/srv/u", "binary_path": "/usr/libexec/virtiofsd"},
]


def test_the_accepted_share_keys_are_the_module_options_the_role_and_guest_keys():
    accepted = hp.accepted_share_keys(ROLE_SHARE_KEYS)
    # the role's argument spec documents exactly these keys; the role's vars list adds no other
    assert accepted == sorted(SPEC_SHARE_KEYS)
    assert accepted == hp.accepted_share_keys()
    assert sorted({k for share in EVERY_KEY for k in share}) == accepted
    assert {"readonly", "cache", "idmap", "packed", "binary_path", "mount_options", "mount_selinux_context",
            "mount_path", "mount_state", "source_mode", "wrapper"} <= set(accepted)
    assert not {"owner", "group", "mode"} & set(accepted)


def test_the_role_and_guest_keys_never_reach_the_share_module():
    # one list: the role's own keys and the guest role's mount keys come from _host_plan/_guest_plan,
    # not from a copy in the role's vars
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import host_share_keys
    assert hp.own_share_keys() == list(hp.ROLE_SHARE_KEYS) + list(host_share_keys())
    assert "_virtiofs_host_role_share_keys" not in (ROOT / "roles/host/vars/main.yml").read_text()
    entry = {key: "x" for key in host_share_keys()}
    entry.update(domain="d", tag="t", source="/srv/t", wrapper="default", mount=True, mount_path="/mnt/t",
                 mount_state="mounted", mount_nofail=True, mount_automount=False, mount_mode="0750")
    result = plan(virtiofs_host_shares=[entry])
    assert result["failure"] is None, result["failure"]
    assert result["shares"][0]["module"] == {"tag": "t", "source": "/srv/t",
                                             "binary_path": "/opt/virtiofsd-rust/virtiofsd.sh"}


def test_an_entry_with_every_accepted_key_passes():
    result = plan(virtiofs_host_shares=EVERY_KEY)
    assert result["failure"] is None, result["failure"]
    assert result["shares"][0]["module"]["owner"] == "qemu" and result["shares"][0]["module"]["mode"] == "0750"


def test_unknown_share_keys_are_refused_with_a_close_match_or_the_accepted_keys():
    accepted = ", ".join(hp.accepted_share_keys(ROLE_SHARE_KEYS))
    assert share_errors({"domain": "a", "tag": "t", "source": "/s", "bogus": 1, "mount_optoins": "ro", "readonyl": True}) == [
        f'{W}: unknown key "bogus"; a share entry accepts {accepted}',
        f'{W}: unknown key "mount_optoins"; did you mean mount_options?',
        f'{W}: unknown key "readonyl"; did you mean readonly?',
    ]
    assert accepted.startswith("ats, binary_path, cache, create_source, domain, idmap, iommu, mount, mount_automount, ")


def test_the_share_modules_owner_group_mode_are_source_keys_in_the_role():
    # the role would overwrite them from source_owner/... and its defaults: refused, naming the role's key
    assert share_errors({"domain": "a", "tag": "t", "source": "/s", "create_source": True, "owner": "qemu", "mode": "0700"}) == [
        f'{W}: unknown key "owner"; the host role calls it source_owner (the owner, group and mode of a source it creates'
        " with create_source: true)",
        f'{W}: unknown key "mode"; the host role calls it source_mode (the owner, group and mode of a source it creates'
        " with create_source: true)",
    ]


def test_unknown_keys_and_the_share_modules_checks_are_reported_together():
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "queue_size": 0, "bogus": 1}])
    assert result["failure"][0] == "virtiofs.libvirt.host: bad virtiofs_host_shares:"
    assert result["failure"][1:] == [f'{W}: unknown key "bogus"; a share entry accepts '
                                     + ", ".join(hp.accepted_share_keys(ROLE_SHARE_KEYS)),
                                     f"{W}: share 't': queue_size must be an integer >= 1, got 0"]


WO = "virtiofs_host_wrappers.default"


@pytest.mark.parametrize("profile,expected", [
    ({"options": {"cahce": "never"}},
     [f"{WO}: options.cahce: unknown option; known: allow_direct_io, allow_mmap, "]),
    ({"options": {"cache": "sometimes"}},
     [f"{WO}: options.cache: 'sometimes' is not a valid cache; choose one of auto, always, never, metadata"]),
    ({"options": {"thread_pool_size": "many"}}, [f"{WO}: options.thread_pool_size must be an integer, got 'many'"]),
    ({"options": {"thread_pool_size": -1}}, [f"{WO}: options.thread_pool_size: thread_pool_size must be >= 0, got -1"]),
    ({"options": {"xattr": "maybe"}}, [f"{WO}: options.xattr must be true or false, got 'maybe'"]),
    ({"extra_args": ["--cahce=never"]},
     [f"{WO}: extra_args '--cahce=never': unknown virtiofsd option --cahce (did you mean --cache?)"]),
    ({"options": {"cache": "never"}, "extra_args": ["--cache=auto"]},
     [f"{WO}: extra_args '--cache=auto' sets cache, which options.cache already sets; keep one"]),
    ({"options": {"posix_acl": True, "translate_uid": ["map:0:1000:1"]}},
     [f"{WO}: options.posix_acl conflicts with options.translate_uid=map:0:1000:1: virtiofsd refuses --posix-acl with "
      "--translate-uid (translating IDs would break POSIX ACLs); remove one of them"]),
])
def test_wrapper_options_the_table_refuses_without_the_daemon(profile, expected):
    errors = wrapper_errors({"default": dict(profile, path="/opt/w/v.sh")})
    assert len(errors) == len(expected)
    for got, want in zip(errors, expected):
        assert got.startswith(want) if want.endswith(", ") else got == want


def test_an_unknown_wrapper_option_gets_the_close_match_and_fails_the_plan():
    result = plan(virtiofs_host_wrappers={"default": {"path": "/opt/w/v.sh", "options": {"cahce": "never"}}},
                  virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s"}])
    assert result["failure"][0] == "virtiofs.libvirt.host: bad wrapper profiles:"
    assert result["failure"][1].endswith(", xattr, xattrmap; did you mean cache?")


def test_wrapper_options_typed_as_the_modules_argument_spec():
    # "yes" for a bool and a comma list pass, as the module's argument spec converts them
    assert wrapper_errors({"default": {"path": "/opt/w/v.sh", "options": {
        "xattr": "yes", "readdirplus": "off", "announce_submounts": 1, "inode_file_handles": "prefer", "thread_pool_size": "4",
        "translate_uid": "map:0:1000:1,map:1:2000:1"}}}) == []
    assert hp.module_typed_options({"xattr": "yes", "readonly": "0", "seccomp": "kill", "uid_map": "a,b", "nope": "yes",
                                    "syslog": "maybe"}) == {
        "xattr": True, "readonly": False, "seccomp": "kill", "uid_map": ["a", "b"], "nope": "yes", "syslog": "maybe"}


def test_version_dependent_options_stay_with_the_module_and_removed_profiles_are_not_checked():
    # options a daemon may be too old for are not the plan's business (the module knows the installed version)
    assert wrapper_errors({"default": {"path": "/opt/w/v.sh", "options": {"translate_uid": ["map:0:1000:1"],
                                                                          "migration_mode": "file-handles"}}}) == []
    assert wrapper_errors({"default": {"path": "/opt/w/v.sh"},
                           "old": {"path": "/opt/w/old.sh", "state": "absent", "options": {"cahce": 1}}}) == []
    assert plan(virtiofs_host_virtiofsd_state="absent", virtiofs_host_wrappers={
        "default": {"path": "/opt/w/v.sh", "options": {"cahce": 1}}})["failure"] is None


def test_only_wrappers_whose_bytes_changed_count_as_changed_binaries():
    """A mode or owner repair (changed, but not content_changed) does not make the share module report running
    domains as restart pending; a rewrite does, and a new daemon counts every wrapper."""
    results = {"results": [
        {"changed": True, "content_changed": False, "item": {"path": "/opt/v/repaired.sh"}},
        {"changed": True, "content_changed": True, "item": {"path": "/opt/v/rewritten.sh"}},
        {"changed": False, "content_changed": False, "item": {"path": "/opt/v/same.sh"}},
        {"skipped": True, "changed": False, "item": {"path": "/opt/v/skipped.sh"}},
    ]}
    plan_ = {"wrapper_paths": ["/opt/v/repaired.sh", "/opt/v/rewritten.sh", "/opt/v/same.sh"]}
    name = "Work out which daemons and wrappers are new or changed in this run"
    changed = role_facts("host", "shares.yml", name, _virtiofs_host_plan=plan_, _virtiofs_host_wrapper_results=results,
                         _virtiofs_host_daemon_path="/opt/v/virtiofsd",
                         _virtiofs_host_virtiofsd={"binary_changed": False})["_virtiofs_host_changed_binaries"]
    assert changed == ["/opt/v/rewritten.sh"]
    changed = role_facts("host", "shares.yml", name, _virtiofs_host_plan=plan_, _virtiofs_host_wrapper_results=results,
                         _virtiofs_host_daemon_path="/opt/v/virtiofsd",
                         _virtiofs_host_virtiofsd={"binary_changed": True})["_virtiofs_host_changed_binaries"]
    assert changed == plan_["wrapper_paths"] + ["/opt/v/virtiofsd"]


# ------------------------------------------------ the types the plan checks are the ones the docs declare


def test_the_documented_share_key_types_are_the_ones_the_plan_checks():
    # the argument spec leaves virtiofs_host_shares raw; its documented keys are typed by share_entry_spec
    spec = hp.share_entry_spec()
    assert sorted(spec) == sorted(SPEC_SHARE_KEYS)
    for key, doc in SPEC_SHARE_KEYS.items():
        want = spec[key].get("type", "str")
        assert doc.get("type", "str") == ("str" if want == "path" else want), key
        assert doc.get("choices") == spec[key].get("choices"), key
    shares = ARGUMENT_SPEC["argument_specs"]["main"]["options"]["virtiofs_host_shares"]
    assert shares["type"] == "raw" and "elements" not in shares


def test_the_guest_mount_key_types_are_the_guest_roles():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import MOUNT_KEY_SPEC
    guest = yaml.safe_load((ROOT / "roles/guest/meta/argument_specs.yml").read_text())
    options = guest["argument_specs"]["main"]["options"]["virtiofs_guest_mounts"]["options"]
    assert sorted(options) == sorted(MOUNT_KEY_SPEC)
    for key, doc in options.items():
        assert doc.get("type", "str") == MOUNT_KEY_SPEC[key]["type"], key
        assert doc.get("choices") == MOUNT_KEY_SPEC[key].get("choices"), key


def test_the_role_facts_are_the_ones_the_tasks_set():
    import re
    tasks = "\n".join(p.read_text() for p in (ROOT / "roles/host/tasks").glob("*.yml"))
    set_names = set(re.findall(r"^\s+(virtiofs_host_[a-z_]+):", tasks, re.M))
    assert set_names == set(hp.ROLE_FACTS)
    description = " ".join(ARGUMENT_SPEC["argument_specs"]["main"]["description"])
    assert all(f"C({fact})" in description for fact in hp.ROLE_FACTS)


def test_ansible_typed_names_the_key_the_type_and_the_value():
    spec = {"a": {"type": "bool"}, "n": {"type": "int"}, "c": {"type": "str", "choices": ["x", "y"]}, "s": {"type": "str"},
            "p": {"type": "path"}}
    typed, problems = hp.ansible_typed(spec, {"a": "yes", "n": 4.0, "c": "x", "s": 12, "p": "~/d", "other": 1})
    assert typed == {"a": True, "n": 4, "c": "x", "s": "12", "p": "~/d", "other": 1}
    assert problems == []
    typed, problems = hp.ansible_typed(spec, {"a": "maybe", "n": 4.5, "c": "z", "s": ["l"], "p": None})
    assert problems == [("a", 'a must be true or false, got "maybe"'), ("n", "n must be a whole number, e.g. 4, got 4.5"),
                        ("c", 'c must be one of x, y, got "z"'), ("s", 's must be a string, got ["l"]')]
    assert typed["a"] == "maybe" and typed["n"] == 4.5


def test_unknown_variables():
    known = ["virtiofs_host_shares", "virtiofs_host_restart"]
    names = ["virtiofs_host_shares", "virtiofs_host_share", "virtiofs_host_restarted", "virtiofs_host_zzz", "other_var"]
    assert hp.unknown_variable_errors(["virtiofs_hosts_shares"], known) == [
        "unknown variable virtiofs_hosts_shares: the host role has no such variable, so a value meant for it is ignored;"
        " did you mean virtiofs_host_shares? (rename it; a variable of your own needs a name without the role's prefix"
        " virtiofs_host_)"]
    assert hp.unknown_variable_errors(names, known) == [
        "unknown variable virtiofs_host_share: the host role has no such variable, so a value meant for it is ignored;"
        " did you mean virtiofs_host_shares? (rename it; a variable of your own needs a name without the role's prefix virtiofs_host_)",
        "unknown variable virtiofs_host_zzz: the host role has no such variable, so a value meant for it is ignored;"
        " see the role's variables (ansible-doc -t role virtiofs.libvirt.host) (rename it; a variable of your own needs a name"
        " without the role's prefix virtiofs_host_)"]
    # without the names (a caller that does not pass them) nothing is checked
    assert plan()["errors"]["variables"] == []


def test_the_role_variables_are_typed_with_the_role_spec():
    role_spec = ARGUMENT_SPEC["argument_specs"]["main"]["options"]
    result = hp.host_plan(params(virtiofs_host_extra_packages="htop,jq", virtiofs_host_apparmor_profiles="usr.sbin.libvirtd",
                                 virtiofs_host_install_packages="false"), role_spec=role_spec)
    assert result["failure"] is None
    assert result["extra_packages"] == ["htop", "jq"] and result["apparmor_profiles"] == ["usr.sbin.libvirtd"]
    assert result["install_packages"] is True  # for the extra packages
    result = hp.host_plan(params(virtiofs_host_install_packages="false", virtiofs_host_virtiofsd_method="url",
                                 virtiofs_host_virtiofsd_url="https://example.org/v.zip",
                                 virtiofs_host_virtiofsd_checksum="sha256:" + "a" * 64), role_spec=role_spec)
    assert result["failure"] is None and result["install_packages"] is False
    result = hp.host_plan(params(virtiofs_host_source_owner=["root"], virtiofs_host_restart_timeout="-5"), role_spec=role_spec)
    assert result["errors"]["variables"] == [
        'virtiofs_host_source_owner must be a string, got ["root"]',
        "virtiofs_host_restart_timeout -5 must be 0 or more seconds (the time a domain gets to shut down gracefully), e.g. 300"]


def test_every_problem_of_an_entry_at_once():
    result = plan(virtiofs_host_shares=[
        {"domain": "a", "tag": "t1", "source": "/s", "mount_optoins": "ro", "thread_pool_size": -1, "binary_path": "/opt//x",
         "create_source": True, "source_mode": "bogus"},
        {"domain": "a", "tag": "t2", "source": "/s", "readonly": "maybe", "mount_path": "bad path"}])
    errors = result["errors"]["shares"]
    w1, w2 = 'virtiofs_host_shares[0] (domain "a", tag "t1")', 'virtiofs_host_shares[1] (domain "a", tag "t2")'
    assert errors[0] == f'{w1}: unknown key "mount_optoins"; did you mean mount_options?'
    assert f"{w1}: share 't1': thread_pool_size must be an integer >= 0, got -1" in errors
    assert any(e.startswith(f"{w1}: share 't1': binary_path '/opt//x' is not in normal form") for e in errors)
    assert any(e.startswith(f"{w1}: ") and "bogus" in e and "mode" in e for e in errors)
    assert f'{w2}: readonly must be true or false, got "maybe"' in errors
    # the whitespace first: the fix of "must be absolute" would be refused for it
    assert (f'{w2}: mount_path "bad path" must not contain whitespace, backslash, & or # (fstab escaping); choose a plain path'
            in errors)


def test_null_values_are_left_out_for_the_module():
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "cache": None, "sandbox": None,
                                         "state": None, "mount": None, "mount_nofail": None}])
    assert result["failure"] is None
    assert result["shares"][0]["module"] == {"tag": "t", "source": "/s", "binary_path": "/opt/virtiofsd-rust/virtiofsd.sh"}


def test_the_inside_of_idmap_is_checked_as_the_module_checks_it():
    for idmap in ({"foo": []}, {"uid": [{"start": 0, "target": 100000, "count": 65536, "extra": 1}]},
                  {"uid": [{"start": 0, "target": 100000, "count": 1.5}]}):
        errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "idmap": idmap}])["errors"]["shares"]
        assert len(errors) == 1 and errors[0].startswith(f"{W}: idmap"), (idmap, errors)


def test_a_share_exposing_what_libvirt_runs_as_root_is_refused():
    for source in ("/opt", "/opt/virtiofsd-rust", "/opt/virtiofsd-rust/"):
        errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": source}])["errors"]["shares"]
        assert errors == [f"{W}: source {source} contains /opt/virtiofsd-rust, /opt/virtiofsd-rust/virtiofsd,"
                          " /opt/virtiofsd-rust/virtiofsd.sh, which libvirt runs as root: a guest that can write the share could"
                          " run its own code as root on the hypervisor; share a directory that holds no wrapper or daemon"]
    assert plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/opt/virtiofsd-rust-data"}])["failure"] is None


def test_a_share_running_a_program_this_run_removes_is_refused():
    errors = plan(virtiofs_host_virtiofsd_state="absent", virtiofs_host_shares=[
        {"domain": "a", "tag": "t", "source": "/s", "binary_path": "/opt/virtiofsd-rust/virtiofsd"}])["errors"]["shares"]
    assert errors == [f"{W}: binary_path /opt/virtiofsd-rust/virtiofsd: the daemon is being removed"
                      " (virtiofs_host_virtiofsd_state=absent) in this run, so the domain would point at a program that no longer"
                      " exists; remove the share too (state: absent) or point it elsewhere"]
    errors = plan(virtiofs_host_wrappers={"default": {"path": "/w/d.sh"}, "old": {"path": "/w/old.sh", "state": "absent"}},
                  virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "binary_path": "/w/old.sh"}])["errors"]["shares"]
    assert errors == [f"{W}: binary_path /w/old.sh: wrapper profile old is being removed in this run, so the domain would"
                      " point at a program that no longer exists; remove the share too (state: absent) or point it elsewhere"]


def test_domain_names_are_text():
    errors = plan(virtiofs_host_shares=[{"domain": 1.10, "tag": "t", "source": "/s"}, {"domain": " vm", "tag": "u", "source": "/s"},
                                        {"domain": True, "tag": "v", "source": "/s"}])["errors"]["shares"]
    assert errors[0] == 'virtiofs_host_shares[0] (domain "1.1", tag "t"): domain 1.1 is a number in YAML (1.10 is read as 1.1); quote it'
    assert errors[1].startswith('virtiofs_host_shares[1] (domain " vm", tag "u"): domain " vm" has leading or trailing blanks')
    assert errors[2] == ('virtiofs_host_shares[2] (domain "True", tag "v"): domain true is a bool in YAML, not a name;'
                         ' quote it (domain: "True")')


def test_source_mode_zero_is_kept():
    result = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "create_source": True, "source_mode": "0000"}])
    assert result["shares"][0]["module"]["mode"] == "0000"


def test_a_removed_share_is_not_mounted():
    errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "state": "absent", "mount_state": "mounted"}])["errors"]["shares"]
    assert errors == [f"{W}: mount_state mounted for a share being removed (state: absent): the guest is no longer offered the"
                      " tag; set mount_state: absent (or unmounted), or leave it out"]


def test_wrapper_paths_that_are_directories_of_the_role():
    errors = wrapper_errors({"default": {"path": "/opt/virtiofsd-rust/virtiofsd.sh"}, "b": {"path": "/opt/virtiofsd-rust"},
                             "r": {"path": "/"}, "c": {"path": "/opt/virtiofsd-rust/virtiofsd.sh/inner.sh"}})
    assert errors == [
        "virtiofs_host_wrappers.b: path /opt/virtiofsd-rust is the install directory /opt/virtiofsd-rust or a directory above it;"
        " give the wrapper a file of its own, e.g. /opt/virtiofsd-rust/virtiofsd-b.sh",
        "virtiofs_host_wrappers.r: path / is the install directory /opt/virtiofsd-rust or a directory above it;"
        " give the wrapper a file of its own, e.g. /opt/virtiofsd-rust/virtiofsd-r.sh",
        "virtiofs_host_wrappers.c: path /opt/virtiofsd-rust/virtiofsd.sh/inner.sh and the path /opt/virtiofsd-rust/virtiofsd.sh"
        " of another profile are one inside the other; each profile needs its own file in a directory"]


def test_install_dir_root_and_apparmor_profile_names():
    assert plan(virtiofs_host_virtiofsd_install_dir="/")["errors"]["install"] == [
        "virtiofs_host_virtiofsd_install_dir / is the root directory; use a directory of its own, e.g. /opt/virtiofsd-rust"]
    assert plan(virtiofs_host_apparmor_profiles=["usr.sbin.libvirtd", "../passwd"])["errors"]["install"] == [
        'virtiofs_host_apparmor_profiles: "../passwd" must be the file name of a profile in virtiofs_host_apparmor_dir'
        " (e.g. usr.sbin.libvirtd), without a /"]


def test_source_with_a_nul_or_newline():
    errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/srv/a\nb"}])["errors"]["shares"]
    assert errors == [f'{W}: source "/srv/a\\nb" contains a NUL or a newline; give a plain directory path']


def test_system_directories_are_not_shared_writable():
    for source, where in (("/etc", "in /etc"), ("/usr", "above /usr/bin"), ("/usr/libexec", "in /usr/libexec"),
                          ("/var/lib/libvirt/images", "in /var/lib/libvirt")):
        errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": source}])["errors"]["shares"]
        assert errors == [f"{W}: source {source} is {where}, which"
                          " root on the hypervisor runs or reads: a guest that can write the share could take over the host;"
                          " share a directory of its own, or set readonly: true"], errors
    assert plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/etc", "readonly": True}])["failure"] is None
    # read-only through the wrapper profile
    assert plan(virtiofs_host_wrappers={"default": {"path": "/w/d.sh", "options": {"readonly": True}}},
                virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/opt"}])["failure"] is None


def test_a_share_exposing_another_shares_binary_is_refused():
    errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/srv/a", "binary_path": "/srv/b/virtiofsd"},
                                        {"domain": "b", "tag": "u", "source": "/srv/b"}])["errors"]["shares"]
    assert errors == ['virtiofs_host_shares[1] (domain "b", tag "u"): source /srv/b contains /srv/b/virtiofsd,'
                      " which libvirt runs as root: a guest that can write the share could run its own code as root on the hypervisor; share a"
                      " directory that holds no wrapper or daemon"]


def test_numbers_and_bools_where_text_or_a_number_belong():
    role_spec = ARGUMENT_SPEC["argument_specs"]["main"]["options"]
    errors = hp.host_plan(params(virtiofs_host_virtiofsd_version=1.10, virtiofs_host_restart_timeout=True),
                          role_spec=role_spec)["errors"]["variables"]
    assert errors == ["virtiofs_host_virtiofsd_version 1.1 is a number in YAML (1.10 is read as 1.1); quote it",
                      "virtiofs_host_restart_timeout must be a whole number, e.g. 4, got true"]


def test_mount_mode_is_checked_on_the_host():
    errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "mount_mode": 755}])["errors"]["shares"]
    assert errors == [f"{W}: mount_mode 755 of the mount point directory is the decimal number 755 (octal 1363), not the"
                      " octal mode 0755: quote it, mode: '0755'"]


def test_omit_in_a_share_entry():
    errors = plan(virtiofs_host_shares=[{"domain": "a", "tag": "t", "source": "/s", "cache": "<<Omit>>"}])["errors"]["shares"]
    assert errors == [f"{W}: cache is omit, which Ansible only applies to a module's or task's own options, not to a key inside"
                      " a variable; use default(none) instead (null means the default)"]


def test_apparmor_dir_and_extra_packages():
    errors = plan(virtiofs_host_apparmor_dir="etc/apparmor.d", virtiofs_host_extra_packages=["htop", "", "-y"])["errors"]["install"]
    assert errors == ['virtiofs_host_apparmor_dir "etc/apparmor.d" must be an absolute path, e.g. /etc/apparmor.d',
                      'virtiofs_host_extra_packages: "" is not a package name; list package names only (no empty entries or'
                      " options such as -y)",
                      'virtiofs_host_extra_packages: "-y" is not a package name; list package names only (no empty entries or'
                      " options such as -y)"]
