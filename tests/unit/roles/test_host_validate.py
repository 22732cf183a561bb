# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host role's input checks (roles/host/tasks/validate.yml), run by ansible-playbook on the
controller through the role's main entry point (its argument spec first, as a user runs it): each bad
input is refused by the validation tasks, which read and change nothing. The host's Python is a
path that does not exist, so input that passes stops at the first task that would run on the host."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

GOOD = {"domain": "vm", "tag": "data", "source": "/srv/data"}
WRAPPERS = {"default": {"path": "/opt/virtiofsd-rust/virtiofsd.sh"}, "ro": {"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh"}}
CASES: t.Dict[str, t.Dict[str, t.Any]] = {  # one role run per case; a case's entries are all reported at once
    "good": {"shares": [GOOD]},
    "shares": {"shares": [
        dict(GOOD, wrapper="nope"),
        dict(GOOD, tag="dup"),
        dict(GOOD, tag="dup", source="/srv/other"),
        {"tag": "y", "source": "/srv/y"},
        dict(GOOD, tag="wb", wrapper="ro", binary_path="/usr/bin/true"),
        dict(GOOD, tag="rel", source="srv/data"),
        dict(GOOD, tag="mp", mount_path="mnt/data"),
        dict(GOOD, tag="t" * 37),
        dict(GOOD, tag="tp", thread_pool_size=-1),
    ]},
    "every_key": {"shares": [
        dict(GOOD, state="present", wrapper="ro", readonly=True, cache="none", sandbox="namespace", xattr=True, thread_pool_size=4,
             openfiles=1024, queue_size=256, idmap={"uid": [{"start": 0, "target": 100000, "count": 65536}],
                                                    "gid": [{"start": 0, "target": 100000, "count": 65536}]},
             ats=False, iommu=False, packed=False, create_source=True, source_owner="root", source_group="root", source_mode="0750",
             mount=True, mount_path="/mnt/data", mount_options="ro", mount_state="mounted", mount_owner="root", mount_group="root",
             mount_mode="0755", mount_automount=False, mount_nofail=True, mount_selinux_context="system_u:object_r:nfs_t:s0"),
        dict(GOOD, tag="bin", binary_path="/usr/libexec/virtiofsd"),
    ], "wrappers": dict(WRAPPERS, ro={"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh",
                                      "options": {"announce_submounts": "yes", "inode_file_handles": "prefer"},
                                      "extra_args": ["--no-readdirplus"]})},
    "unknown_share_keys": {"shares": [dict(GOOD, bogus=1, mount_optoins="ro", owner="qemu")]},
    "wrapper_options": {"wrappers": dict(WRAPPERS, ro={"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh",
                                                       "options": {"cahce": "never", "sandbox": "jail"},
                                                       "extra_args": ["--thread-pool-size=-1"]})},
    "not_a_list": {"shares": {"domain": "vm"}},
    "shares_null": {"shares": None},
    "entry_not_a_dict": {"shares": ["vm:data:/srv/data"]},
    "wrappers_list": {"wrappers": [{"path": "/opt/w.sh"}]},
    "typed": {"shares": [
        dict(GOOD, readonly="maybe", create_source="maybe", cache="fast"),
        dict(GOOD, tag="dom", domain=["vm"]),
        dict(GOOD, tag="ms", mount_state="bogus", mount="sometimes"),
        dict(GOOD, tag="sp", mount_path="/mnt/a b", mount_options="ro, noatime"),
        dict(GOOD, tag="p1", mount_path="/mnt/same"),
        dict(GOOD, tag="p2", mount_path="/mnt/same"),
        dict(GOOD, tag="root", source="//"),
    ]},
    "typed_like_the_module": {"shares": [dict(GOOD, thread_pool_size=4.0, readonly="yes", openfiles="1024")],
                              "wrappers": dict(WRAPPERS, ro={"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh",
                                                             "options": {"thread_pool_size": 4.0}})},
    "package_dirs": {"wrappers": dict(WRAPPERS, ro={"path": "/usr/libexec/virtiofsd-ro.sh"}, bin={"path": "/usr/bin/vfs.sh"})},
    "install_dir_in_package_dir": {"install_dir": "/usr/libexec"},
    "relative_source_dir": {"method": "source", "source_dir": "crates/virtiofsd"},
    "negative_restart_timeout": {"restart_timeout": -1},
    "string_restart_timeout": {"restart_timeout": "-5"},
    "omit_in_an_entry": {"shares": [dict(GOOD, cache="{{ undefined_cache | default(omit) }}")]},
    "ambiguous_bools": {"shares": [dict(GOOD, mount_nofail="t", create_source="Y")]},
    "null_is_the_default": {"shares": [dict(GOOD, mount=None, mount_nofail=None, cache=None, state=None)]},
    "wrappers": {"wrappers": {
        "default": {"path": "/opt/w.sh"},
        "other": {"path": "/opt/w.sh"},
        "extra": {"path": "/opt/x.sh", "option": {"cache": "never"}},
        "my profile": {"path": "/opt/y.sh"},
        "daemon": {"path": "/opt/virtiofsd-rust/virtiofsd"},
    }},
    "url_without_checksum": {"method": "url", "url": "https://example.invalid/v.zip", "checksum": ""},
    "source_without_source": {"method": "source"},
}

CASE_TASKS = """
- name: One case
  block:
    - name: Validate the input
      ansible.builtin.include_role:
        name: virtiofs.libvirt.host
      vars:
        ansible_python_interpreter: /nonexistent/python3
        virtiofs_host_shares: "{{ case.value.shares if 'shares' in case.value else [] }}"
        virtiofs_host_virtiofsd_install_dir: "{{ case.value.install_dir | default('/opt/virtiofsd-rust') }}"
        virtiofs_host_virtiofsd_source_dir: "{{ case.value.source_dir | default('') }}"
        virtiofs_host_restart_timeout: "{{ case.value.restart_timeout | default(300) }}"
        virtiofs_host_wrappers: "{{ case.value.wrappers | default(wrappers) }}"
        virtiofs_host_virtiofsd_method: "{{ case.value.method | default('package') }}"
        virtiofs_host_virtiofsd_url: "{{ case.value.url | default('') }}"
        virtiofs_host_virtiofsd_checksum: "{{ case.value.checksum | default('') }}"
    - name: Record the pass
      ansible.builtin.set_fact:
        outcome: "{{ outcome | combine({case.key: None}) }}"
  rescue:
    - name: Record the refusal
      ansible.builtin.set_fact:
        outcome: "{{ outcome | combine({case.key: {'task': ansible_failed_task.name, 'msg': ansible_failed_result.msg}}) }}"
"""


def _collections_path() -> str:
    for entry in sys.path:
        if (Path(entry) / "ansible_collections" / "virtiofs" / "libvirt").is_dir():
            return entry
    raise AssertionError("the collection is not importable")  # pragma: no cover - conftest puts it on sys.path


def _ansible_playbook() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"  # the venv's, with this Python
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    assert found, "ansible-playbook not found"
    return found


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> t.Dict[str, t.Any]:
    """Per case: None (accepted) or the failed task's name and message."""
    work = tmp_path_factory.mktemp("host-validate")
    (work / "case.yml").write_text(CASE_TASKS)
    result = work / "outcome.json"
    play = [{
        "name": "host role input checks", "hosts": "localhost", "gather_facts": False,
        "vars": {"cases": CASES, "wrappers": WRAPPERS, "outcome": {}, "ansible_python_interpreter": sys.executable},
        "tasks": [
            {"name": "Each case", "ansible.builtin.include_tasks": str(work / "case.yml"),
             "loop": "{{ cases | dict2items }}", "loop_control": {"loop_var": "case", "label": "{{ case.key }}"}},
            {"name": "A misspelt role variable", "block": [
                {"name": "Run the role", "ansible.builtin.include_role": {"name": "virtiofs.libvirt.host"},
                 "vars": {"ansible_python_interpreter": "/nonexistent/python3", "virtiofs_host_share": [GOOD],
                          "virtiofs_host_restrat": "never"}},
            ], "rescue": [
                {"name": "Record the refusal", "ansible.builtin.set_fact": {"outcome": (
                    "{{ outcome | combine({'typo_variable': {'task': ansible_failed_task.name,"
                    " 'msg': ansible_failed_result.msg}}) }}")}},
            ]},
            {"name": "Write the outcome",
             "ansible.builtin.copy": {"content": "{{ outcome | to_json }}", "dest": str(result), "mode": "0600"}},
        ],
    }]
    (work / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run(
        [_ansible_playbook(), "-i", "localhost,", "-c", "local", str(work / "play.yml")],
        env=env, cwd=work, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result.read_text())


# The first task after the input checks: it runs on the host, whose Python does not exist here.
FIRST_HOST_TASK = "Gather the facts the role needs"


def refusal(outcome: t.Dict[str, t.Any], case: str) -> str:
    got = outcome[case]
    assert got is not None and got["task"] != FIRST_HOST_TASK, f"{case} was accepted"
    # the role's own check, not Ansible's generic argument spec message
    assert got["task"] == "Report bad input", got
    msg = got["msg"]
    return "\n".join(msg) if isinstance(msg, list) else msg


def accepted(outcome: t.Dict[str, t.Any], case: str) -> bool:
    got = outcome[case]
    assert got is not None, f"{case}: the role ended without reaching the host"
    assert got["task"] == FIRST_HOST_TASK, got
    return True


def test_good_input_passes(outcome):
    assert accepted(outcome, "good")


def test_unknown_wrapper_profile(outcome):
    msg = refusal(outcome, "shares")
    assert msg.startswith("virtiofs.libvirt.host: bad virtiofs_host_shares:")
    assert ('virtiofs_host_shares[0] (domain "vm", tag "data"): wrapper profile "nope" is not defined in '
            "virtiofs_host_wrappers (profiles: default, ro); add it or set binary_path") in msg


def test_same_share_twice(outcome):
    assert ('virtiofs_host_shares[2] (domain "vm", tag "dup"): the same domain and tag appear twice; '
            "one entry per share") in refusal(outcome, "shares")


def test_share_without_domain(outcome):
    assert "domain is missing; set the libvirt domain name the share belongs to" in refusal(outcome, "shares")


def test_wrapper_and_binary_path(outcome):
    assert "set either wrapper (a profile name) or binary_path, not both" in refusal(outcome, "shares")


def test_relative_source(outcome):
    assert 'source "srv/data" must be an absolute path' in refusal(outcome, "shares")


def test_relative_mount_path(outcome):
    assert 'mount_path "mnt/data" must be absolute, e.g. /mnt/data' in refusal(outcome, "shares")


def test_long_tag_gets_the_share_modules_message(outcome):
    assert "bytes long but a virtio-fs tag holds at most 36 bytes: use a shorter tag" in refusal(outcome, "shares")


def test_value_the_share_module_would_refuse(outcome):
    assert "share 'tp': thread_pool_size must be an integer >= 0, got -1" in refusal(outcome, "shares")


def test_shares_not_a_list(outcome):
    assert "virtiofs_host_shares must be a list of shares" in refusal(outcome, "not_a_list")


def test_two_profiles_on_one_file(outcome):
    msg = refusal(outcome, "wrappers")
    assert msg.startswith("virtiofs.libvirt.host: bad wrapper profiles:")
    assert "virtiofs_host_wrappers.other: path /opt/w.sh is used by another profile; each profile needs its own file" in msg


def test_unknown_key_in_a_profile(outcome):
    assert ("unknown keys option; a profile has path, options, extra_args, state and backup"
            in refusal(outcome, "wrappers"))


def test_profile_name_with_a_space(outcome):
    assert "profile names may only contain letters, digits, . _ -" in refusal(outcome, "wrappers")


def test_profile_path_is_the_daemon(outcome):
    assert "path /opt/virtiofsd-rust/virtiofsd is the daemon itself;" in refusal(outcome, "wrappers")


def test_url_without_checksum(outcome):
    assert ("virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_checksum"
            in refusal(outcome, "url_without_checksum"))


def test_source_method_without_a_source(outcome):
    assert ("virtiofs_host_virtiofsd_method=source needs virtiofs_host_virtiofsd_source_dir,"
            in refusal(outcome, "source_without_source"))


def test_an_entry_with_every_accepted_key_passes(outcome):
    assert accepted(outcome, "every_key")


def test_unknown_share_keys(outcome):
    msg = refusal(outcome, "unknown_share_keys")
    where = 'virtiofs_host_shares[0] (domain "vm", tag "data")'
    assert msg.startswith("virtiofs.libvirt.host: bad virtiofs_host_shares:")
    assert f'{where}: unknown key "bogus"; a share entry accepts ats, binary_path, cache, create_source, domain, ' in msg
    assert f'{where}: unknown key "mount_optoins"; did you mean mount_options?' in msg
    assert f'{where}: unknown key "owner"; the host role calls it source_owner' in msg


def test_wrapper_options_refused_before_the_daemon_is_installed(outcome):
    msg = refusal(outcome, "wrapper_options")
    assert msg.startswith("virtiofs.libvirt.host: bad wrapper profiles:")
    assert "virtiofs_host_wrappers.ro: options.cahce: unknown option; known: allow_direct_io, " in msg
    assert ", xattr, xattrmap; did you mean cache?" in msg
    assert ("virtiofs_host_wrappers.ro: options.sandbox: 'jail' is not a valid sandbox; choose one of namespace, chroot, none"
            in msg)
    assert ("virtiofs_host_wrappers.ro: extra_args '--thread-pool-size=-1': thread_pool_size must be >= 0, got -1" in msg)


# ------------------------------------------- what the argument spec used to answer with its generic message


def test_shares_null(outcome):
    assert "virtiofs_host_shares must be a list of shares ({domain, tag, source, ...}), got None" in refusal(outcome, "shares_null")


def test_entry_not_a_dict(outcome):
    assert ("virtiofs_host_shares[0]: must be a dict with at least domain, tag and source, got vm:data:/srv/data"
            in refusal(outcome, "entry_not_a_dict"))


def test_wrappers_not_a_dict(outcome):
    msg = refusal(outcome, "wrappers_list")
    assert msg.startswith("virtiofs.libvirt.host: bad wrapper profiles:")
    assert "virtiofs_host_wrappers must be a dict of profile name -> {path, options}, got [{'path': '/opt/w.sh'}]" in msg


def test_values_are_typed_entry_by_entry(outcome):
    msg = refusal(outcome, "typed")
    where = 'virtiofs_host_shares[0] (domain "vm", tag "data")'
    # every problem of the entry at once, each naming the key, what it must be and the value
    assert f'{where}: readonly must be true or false, got "maybe"' in msg
    assert f'{where}: create_source must be true or false, got "maybe"' in msg
    assert f'{where}: cache must be one of none, always, got "fast"' in msg
    assert 'virtiofs_host_shares[1] (domain "[\'vm\']", tag "dom"): domain must be a string, got ["vm"]' in msg
    assert 'virtiofs_host_shares[2] (domain "vm", tag "ms"): mount_state must be one of mounted, present, unmounted, absent, got "bogus"' in msg
    assert 'virtiofs_host_shares[2] (domain "vm", tag "ms"): mount must be true or false, got "sometimes"' in msg


def test_guest_mount_checks_run_on_the_host(outcome):
    msg = refusal(outcome, "typed")
    where = 'virtiofs_host_shares[3] (domain "vm", tag "sp")'
    assert f'{where}: mount_path "/mnt/a b" ' + "must not contain whitespace, backslash, & or # (fstab escaping); choose a plain path" in msg
    assert ('virtiofs_host_shares[3] (domain "vm", tag "sp"): mount_options "ro, noatime" contain whitespace;'
            ' separate options with commas only') in msg
    assert ('virtiofs_host_shares[5] (domain "vm", tag "p2"): mount_path "/mnt/same" is used by an earlier entry;'
            ' each mount point may appear only once') in msg
    assert "virtiofs_host_shares[4]" not in msg


def test_values_typed_as_the_modules_type_them_pass(outcome):
    # 4.0 and "1024" for an int and "yes" for a bool: what the share and wrapper modules accept
    assert accepted(outcome, "typed_like_the_module")


def test_misspelt_role_variable(outcome):
    msg = refusal(outcome, "typo_variable")
    assert msg.startswith("virtiofs.libvirt.host: bad role variables:")
    assert ("unknown variable virtiofs_host_share: the host role has no such variable, so a value meant for it is ignored;"
            " did you mean virtiofs_host_shares? (rename it; a variable of your own needs a name without the role's prefix virtiofs_host_)") in msg
    assert ("unknown variable virtiofs_host_restrat: the host role has no such variable, so a value meant for it is ignored;"
            " did you mean virtiofs_host_restart?") in msg


def test_wrapper_in_a_package_directory(outcome):
    msg = refusal(outcome, "package_dirs")
    assert ("virtiofs_host_wrappers.ro: path /usr/libexec/virtiofsd-ro.sh is in /usr/libexec, which the distribution's packages own:"
            " a package upgrade could replace it") in msg
    assert "virtiofs_host_wrappers.bin: path /usr/bin/vfs.sh is in /usr/bin, which the distribution's packages own" in msg


def test_install_dir_in_a_package_directory(outcome):
    msg = refusal(outcome, "install_dir_in_package_dir")
    assert "virtiofs_host_virtiofsd_install_dir /usr/libexec is in /usr/libexec, which the distribution's packages own" in msg
    # the default wrapper made from it is not reported again
    assert "virtiofs_host_wrappers.default" not in msg


def test_relative_source_dir(outcome):
    assert ('virtiofs_host_virtiofsd_source_dir "crates/virtiofsd" must be an absolute path on the hypervisor'
            in refusal(outcome, "relative_source_dir"))


def test_negative_restart_timeout(outcome):
    assert ("virtiofs_host_restart_timeout -1 must be 0 or more seconds"
            in refusal(outcome, "negative_restart_timeout"))


def test_the_host_root_is_not_shared(outcome):
    assert ('virtiofs_host_shares[6] (domain "vm", tag "root"): source \'//\' is the root of the host file system: the guest would'
            " get the whole host file system" in refusal(outcome, "typed"))


def test_a_string_from_extra_vars_is_typed_before_it_is_checked(outcome):
    # -e virtiofs_host_restart_timeout=-5 is the string "-5": the argument check accepts it unconverted
    assert ("virtiofs_host_restart_timeout -5 must be 0 or more seconds"
            in refusal(outcome, "string_restart_timeout"))


def test_bools_the_argument_check_and_the_bool_filter_read_differently(outcome):
    msg = refusal(outcome, "ambiguous_bools")
    where = 'virtiofs_host_shares[0] (domain "vm", tag "data")'
    assert (f'{where}: mount_nofail must be true or false, got "t" (Ansible' + "'s argument check reads t as true,"
            " its bool filter as false: write true or false)") in msg
    assert f'{where}: create_source must be true or false, got "Y"' in msg


def test_null_means_the_default(outcome):
    assert accepted(outcome, "null_is_the_default")


def test_omit_templated_in_a_share_entry_leaves_the_key_out(outcome):
    # ansible-core drops a key whose template gives omit inside a container; a raw omit value that reaches the
    # plan (tests/unit/plugins/module_utils/test__host_plan.py::test_omit_in_a_share_entry) is refused
    assert accepted(outcome, "omit_in_an_entry")
