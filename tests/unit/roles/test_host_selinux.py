# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host role's SELinux labels (roles/host/tasks/selinux.yml, "Decide the labels"), run by
ansible-playbook on the controller after the role's own validate tasks computed the plan: the
daemon and every present wrapper get a file context rule. (The Jinja loop this task had before
lost the wrappers' rules: a ``set`` inside a Jinja ``for`` does not outlive the loop.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from test_host_validate import _ansible_playbook, _collections_path

ROOT = Path(__file__).resolve().parents[3]
WRAPPERS = {"default": {"path": "/opt/virtiofsd-rust/virtiofsd.sh"},
            "ro": {"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh"},
            "old": {"path": "/opt/virtiofsd-rust/old.sh", "state": "absent"}}


def decide(tmp_path: Path, **role_vars) -> list:
    tasks = yaml.safe_load((ROOT / "roles" / "host" / "tasks" / "selinux.yml").read_text())
    (decide_task,) = [t for t in tasks if t["name"] == "Decide the labels"]
    result = tmp_path / "rules.json"
    play = [{
        "name": "host role SELinux labels", "hosts": "localhost", "gather_facts": False,
        "vars": {"virtiofs_host_wrappers": WRAPPERS, "virtiofs_host_shares": [],
                 "virtiofs_host_selinux_wrapper_type": "bin_t", **role_vars},
        "tasks": [
            {"name": "Validate the input (computes the plan)",
             "ansible.builtin.include_role": {"name": "virtiofs.libvirt.host", "tasks_from": "validate"}},
            decide_task,
            {"name": "Write the rules",
             "ansible.builtin.copy": {"content": "{{ _virtiofs_host_selinux_rules | to_json }}", "dest": str(result),
                                      "mode": "0600"}},
        ],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([_ansible_playbook(), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result.read_text())


def test_daemon_and_every_present_wrapper_get_a_rule(tmp_path):
    rules = decide(tmp_path, _virtiofs_host_daemon_path="/opt/virtiofsd-rust/virtiofsd",
                   virtiofs_host_selinux_daemon_type="",
                   _virtiofs_host_selinux_reference_context={"stdout": "system_u:object_r:virtd_exec_t:s0\n"})
    assert rules == [
        {"path": "/opt/virtiofsd-rust/virtiofsd", "type": "virtd_exec_t"},
        {"path": "/opt/virtiofsd-rust/virtiofsd.sh", "type": "bin_t"},
        {"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh", "type": "bin_t"},
    ]


def test_the_rules_name_the_resolved_paths(tmp_path):
    """semanage fcontext rules match the real path: the role passes the modules' realpath to the filter."""
    rules = decide(tmp_path, _virtiofs_host_daemon_path="/opt/virtiofsd-rust/virtiofsd",
                   virtiofs_host_selinux_daemon_type="virtd_exec_t",
                   _virtiofs_host_virtiofsd_realpath="/srv/virtiofsd-rust/virtiofsd",
                   _virtiofs_host_wrapper_realpaths={"/opt/virtiofsd-rust/virtiofsd.sh": "/srv/virtiofsd-rust/virtiofsd.sh"})
    assert rules == [
        {"path": "/srv/virtiofsd-rust/virtiofsd", "type": "virtd_exec_t"},
        {"path": "/srv/virtiofsd-rust/virtiofsd.sh", "type": "bin_t"},
        {"path": "/opt/virtiofsd-rust/virtiofsd-ro.sh", "type": "bin_t"},
    ]
