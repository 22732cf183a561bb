# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofs.libvirt.guest on a real guest of the lab (issue 5).

The module fixture boots an own TCG guest (``it-guest-role``, SSH on 127.0.0.1:2250) from the
lab image, with one virtio-fs share (tag ``itshare``) served by the lab's Rust virtiofsd from a
fresh host directory. The share is added through ``labctl.clone_guest(filesystems=...)``
(lxml), with memfd shared memory. The playbooks run the integration target
``tests/integration/targets/role_guest`` (Ansible asserts inside the guest); this driver
checks the outcome again from outside: over SSH in the guest and in the share directory on the
host.

Tests run in file order and share the guest; each one first puts the guest into the state it
needs through the role itself.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "tests" / "integration" / "targets"
VENV_BIN = Path(sys.executable).parent

NAME = "it-guest-role"
PORT = 2250
TAG = "itshare"
MOUNT = "/mnt/itshare"
MISSING_TAG = "itmissing"
MISSING_MOUNT = "/mnt/itmissing"
NEVER_MOUNT = "/mnt/itnever"
HOST_DIR = Path("/var/tmp/it-guest-role")
BINARY = Path("/opt/it-guest/virtiofsd")
NOT_OFFERED = f"tag {MISSING_TAG} not offered to this guest: is the share defined and the domain restarted?"

pytestmark = [pytest.mark.slow]


# ------------------------------------------------------------------ helpers

@dataclass
class Play:
    rc: int
    stdout: str
    stderr: str
    data: dict

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def stats(self, host: str) -> dict:
        return self.data.get("stats", {}).get(host, {})

    def results(self, name_part: str, host: str) -> list[dict]:
        """Results on ``host`` of every task whose name contains ``name_part``."""
        found = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if name_part in task.get("task", {}).get("name", "") and host in task.get("hosts", {}):
                    found.append(task["hosts"][host])
        return found

    def item_results(self, name_part: str, host: str, path: str) -> list[dict]:
        """Per-share results on ``host`` of the looped tasks whose name contains ``name_part``:
        the loop items whose share (the loop variable) has mount point ``path``."""
        found = []
        for result in self.results(name_part, host):
            for item in result.get("results", []):
                share = item.get(item.get("ansible_loop_var", "item"))
                if isinstance(share, dict) and share.get("path") == path:
                    found.append(item)
        return found

    def explain(self) -> str:
        return f"rc={self.rc}\n--- stderr\n{self.stderr[-3000:]}\n--- stdout\n{self.stdout[-6000:]}"


def ansible_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH",
                   str(Path(os.environ.get("VIRTIOFS_DEV_HOME", Path.home() / ".cache/virtiofs-libvirt"))
                       / "collections"))
    env.setdefault("ANSIBLE_PIPELINING", "True")  # one SSH round trip per task on the TCG guest
    env.update({
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_ROLES_PATH": str(TARGETS),
    })
    return env


def run_play(inventory: Path | str, hosts: str, extra_vars: dict, workdir: Path, check: bool = False,
             diff: bool = False, extra_args: list[str] | None = None, timeout: int = 900) -> Play:
    playbook = workdir / "role_guest.yml"
    playbook.write_text(
        "---\n"
        "- name: Integration target role_guest\n"
        f"  hosts: {hosts}\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: role_guest\n"
    )
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook),
            "-e", json.dumps(extra_vars)] + (extra_args or [])
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, env=ansible_env(),
                          cwd=ROOT)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else {}
    except ValueError:
        data = {}
    return Play(proc.returncode, proc.stdout, proc.stderr, data)


@dataclass
class Guest:
    labctl: object
    inventory: Path
    workdir: Path
    share: Path

    host = "it_guest"

    def ssh(self, command: str, check: bool = True, timeout: int = 120) -> str:
        return self.labctl.guest_ssh(PORT, command, check=check, timeout=timeout).stdout

    def play(self, phase: str, check: bool = False, diff: bool = False, **variables) -> Play:
        extra = {"role_guest_phase": phase, "role_guest_tag": TAG, "role_guest_path": MOUNT}
        extra.update(variables)
        return run_play(self.inventory, self.host, extra, self.workdir, check=check, diff=diff)

    def role(self, mounts: list[dict], check: bool = False, diff: bool = False) -> Play:
        return self.play("role", check=check, diff=diff, role_guest_mounts=mounts)

    def fstab(self) -> str:
        return self.ssh("cat /etc/fstab")

    def fstab_lines(self) -> list[str]:
        return self.fstab().splitlines()

    def findmnt(self, path: str) -> list[dict]:
        out = self.ssh(f"findmnt --json --list --output TARGET,SOURCE,FSTYPE --mountpoint {path} || true")
        return json.loads(out)["filesystems"] if out.strip() else []

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=30).strip()

    def reboot(self, timeout: int = 420) -> str:
        """Reboot the guest, wait for SSH of the *new* boot, return `systemctl is-system-running --wait`."""
        old = self.boot_id()
        try:
            self.ssh("systemctl reboot", check=False, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + timeout
        while time.time() < deadline:
            time.sleep(3)
            try:
                proc = self.labctl.guest_ssh(PORT, "cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if proc.returncode == 0 and proc.stdout.strip() and proc.stdout.strip() != old:
                state = self.labctl.guest_ssh(PORT, "systemctl is-system-running --wait", check=False,
                                              timeout=300).stdout.strip()
                return state
        serial = Path(f"/var/log/libvirt/qemu/{NAME}-serial.log")
        tail = serial.read_text(errors="replace")[-3000:] if serial.exists() else "(no serial log)"
        raise AssertionError(f"guest did not come back over SSH within {timeout}s after reboot "
                             f"(emergency mode?); serial console tail:\n{tail}")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def guest(lab, labctl, tmp_path_factory):
    shutil.rmtree(HOST_DIR, ignore_errors=True)
    share = HOST_DIR / "share"
    share.mkdir(parents=True)
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    if not BINARY.exists() or BINARY.read_bytes() != Path(lab["virtiofsd_binary"]).read_bytes():
        shutil.copy2(lab["virtiofsd_binary"], BINARY)
    BINARY.chmod(0o755)
    workdir = tmp_path_factory.mktemp("role_guest")
    inventory = workdir / "inventory.yml"
    inventory.write_text(
        "---\nall:\n  hosts:\n    it_guest:\n"
        "      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {PORT}\n"
        "      ansible_user: root\n"
        f"      ansible_ssh_private_key_file: {lab['ssh_key']}\n"
        "      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n"
        "      ansible_python_interpreter: /usr/bin/python3\n"
    )
    try:
        labctl.clone_guest(NAME, PORT, shared_memory=True,
                           filesystems=[{"tag": TAG, "source": str(share), "binary": str(BINARY)}])
        yield Guest(labctl, inventory, workdir, share)
    finally:
        labctl.destroy_guest(NAME)
        shutil.rmtree(HOST_DIR, ignore_errors=True)


# ------------------------------------------------------------------ tests without the lab

BAD_MOUNTS = [
    {"tag": "t" * 37, "path": "/mnt/long"},
    {"tag": "ok", "path": "relative/dir"},
    {"tag": "daxed", "path": "/mnt/dax", "options": "defaults,dax"},
    {"tag": "trail", "path": "/mnt/trail/"},
    {"tag": "my share", "path": "/mnt/space"},
]
BAD_MESSAGES = [
    'virtiofs_guest_mounts[0] (tag "' + "t" * 37 + '", path "/mnt/long"): tag \'' + "t" * 37
    + "' is 37 bytes long but a virtio-fs tag holds at most 36 bytes: use a shorter tag (here and in the domain XML)",
    'virtiofs_guest_mounts[1] (tag "ok", path "relative/dir"): path must be absolute, e.g. /relative/dir',
    'virtiofs_guest_mounts[2] (tag "daxed", path "/mnt/dax"): options "defaults,dax" contain dax: DAX needs a '
    "DAX window",
    'virtiofs_guest_mounts[3] (tag "trail", path "/mnt/trail/"): path is not normalised; write /mnt/trail instead',
    'virtiofs_guest_mounts[4] (tag "my share", path "/mnt/space"): tag \'my share\' contains \' \': a tag may only '
    "contain A-Z a-z 0-9 . _ : @ + = / - (the guest writes it into /etc/fstab and mount options); rename the share",
]


def _bad_input_messages(play: Play, host: str) -> list[str]:
    failed = play.results("Report invalid virtiofs_guest_mounts", host)
    assert failed and failed[-1].get("failed"), play.explain()
    return failed[-1]["msg"]


def controller_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("---\nall:\n  hosts:\n    controller:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    return inventory


def test_bad_input_is_refused_with_clear_messages(tmp_path):
    """Input validation runs before anything is read from or changed on the host (here the
    controller itself, in check mode, so a regression could not touch it either)."""
    inventory = controller_inventory(tmp_path)
    play = run_play(inventory, "controller", {"role_guest_phase": "role", "role_guest_mounts": BAD_MOUNTS},
                    tmp_path, check=True)
    assert play.rc == 2, play.explain()
    msgs = _bad_input_messages(play, "controller")
    assert msgs[0] == "virtiofs.libvirt.guest: invalid input, nothing was changed:"
    for expected in BAD_MESSAGES:
        assert any(m.startswith(expected) for m in msgs), (expected, msgs)
    assert len(msgs) == 1 + len(BAD_MESSAGES), msgs
    # The role stopped at validation: nothing was read from the guest, no mount task ran.
    assert not play.results("Read what the guest offers", "controller"), play.explain()
    assert play.stats("controller")["changed"] == 0


def test_a_number_as_tag_is_refused_as_not_a_string(tmp_path):
    """tag: 0 is falsy but not missing: it gets the "quote it" message, as tag: 12 does."""
    inventory = controller_inventory(tmp_path)
    play = run_play(inventory, "controller", {"role_guest_phase": "role", "role_guest_mounts": [
        {"tag": 0, "path": "/mnt/zero"}, {"tag": 12, "path": "/mnt/twelve"}]}, tmp_path, check=True)
    assert play.rc == 2, play.explain()
    assert _bad_input_messages(play, "controller")[1:] == [
        'virtiofs_guest_mounts[0] (tag 0, path "/mnt/zero"): tag must be a string, got int 0: quote it in YAML'
        " (here and in the domain XML)",
        'virtiofs_guest_mounts[1] (tag 12, path "/mnt/twelve"): tag must be a string, got int 12: quote it in YAML'
        " (here and in the domain XML)",
    ]


def test_unknown_state_is_refused_by_the_argument_spec(tmp_path):
    inventory = controller_inventory(tmp_path)
    play = run_play(inventory, "controller", {"role_guest_phase": "role", "role_guest_mounts": [
        {"tag": "x", "path": "/mnt/x", "state": "mountd"}]}, tmp_path, check=True)
    assert play.rc == 2, play.explain()
    assert "mountd" in play.text and "mounted, present, unmounted, absent" in play.text, play.explain()
    assert not play.results("Normalise and check virtiofs_guest_mounts", "controller")


# ------------------------------------------------------------------ tests on a lab guest

def test_bad_input_leaves_guest_fstab_alone(guest):
    before = guest.fstab()
    play = guest.role(BAD_MOUNTS)
    assert play.rc == 2, play.explain()
    msgs = _bad_input_messages(play, guest.host)
    for expected in BAD_MESSAGES:
        assert any(m.startswith(expected) for m in msgs), (expected, msgs)
    assert guest.fstab() == before
    assert guest.ssh("ls -d /mnt/long /mnt/dax /mnt/trail 2>/dev/null || true").strip() == ""


def test_mount_share_fstab_line_and_files_both_ways(guest):
    host_token = f"from host {secrets.token_hex(8)}\n"
    guest_token = f"from guest {secrets.token_hex(8)}\n"
    (guest.share / "host-to-guest.txt").write_text(host_token)
    assert guest.findmnt(MOUNT) == []
    play = guest.play("mount", role_guest_host_token=host_token, role_guest_guest_token=guest_token)
    assert play.rc == 0, play.explain()
    mounted = play.item_results("Mount the tags", guest.host, MOUNT)
    assert mounted and mounted[-1]["changed"] is True, play.explain()
    # Checked again from outside Ansible: the exact fstab line, the mount, the files.
    expected = f"{TAG} {MOUNT} virtiofs defaults,nofail 0 0"
    lines = guest.fstab_lines()
    assert lines.count(expected) == 1, lines
    assert [ln for ln in lines if f" {MOUNT} " in ln] == [expected]
    assert guest.findmnt(MOUNT) == [{"target": MOUNT, "source": TAG, "fstype": "virtiofs"}]
    assert guest.ssh(f"cat {MOUNT}/host-to-guest.txt") == host_token
    assert (guest.share / "guest-to-host.txt").read_text() == guest_token
    assert "_netdev" not in expected and "dax" not in guest.fstab()


def test_second_run_and_check_mode_change_nothing_and_automount_mounts_on_first_access(guest):
    # One set of role runs (a TCG guest makes each cost a minute) for a plain mount and an
    # automount: both are written, the automount mounts on first access; a second run and a
    # check-mode run change nothing for either; removing the automount stops it.
    auto = "/mnt/itauto"
    mounts = [{"tag": TAG, "path": MOUNT}, {"tag": TAG, "path": auto, "automount": True}]
    first = guest.role(mounts)
    assert first.rc == 0, first.explain()
    assert f"{TAG} {auto} virtiofs defaults,nofail,x-systemd.automount 0 0" in guest.fstab_lines()
    fstypes = sorted(fs["fstype"] for fs in guest.findmnt(auto))
    assert fstypes == ["autofs", "virtiofs"], fstypes
    assert guest.ssh(f"cat {auto}/host-to-guest.txt").startswith("from host ")
    before = guest.fstab()
    again = guest.role(mounts)
    assert again.rc == 0, again.explain()
    assert again.stats(guest.host)["changed"] == 0, again.explain()
    check = guest.role(mounts, check=True, diff=True)
    assert check.rc == 0, check.explain()
    assert check.stats(guest.host)["changed"] == 0, check.explain()
    assert guest.fstab() == before
    assert guest.findmnt(MOUNT) == [{"target": MOUNT, "source": TAG, "fstype": "virtiofs"}]
    gone = guest.role([{"tag": TAG, "path": auto, "state": "absent"}])
    assert gone.rc == 0, gone.explain()
    assert guest.findmnt(auto) == []
    assert not [ln for ln in guest.fstab_lines() if f" {auto} " in ln]
    assert guest.ssh("systemctl is-active mnt-itauto.automount", check=False).strip() != "active"


def test_check_mode_with_diff_shows_lines_and_changes_nothing(guest):
    before = guest.fstab()
    mounts = [
        {"tag": TAG, "path": "/mnt/itcheck", "options": "ro", "automount": True,
         "selinux_context": "system_u:object_r:public_content_t:s0"},
        {"tag": TAG, "path": "/mnt/itstrict", "nofail": False},
    ]
    play = guest.role(mounts, check=True, diff=True)
    assert play.rc == 0, play.explain()
    assert play.stats(guest.host)["changed"] > 0
    diffs = {}
    for path in ("/mnt/itcheck", "/mnt/itstrict"):
        res = play.item_results("Show the /etc/fstab changes", guest.host, path)
        assert res and res[-1]["changed"] is True, play.explain()
        diffs[path] = res[-1]["diff"][0]["after"] if isinstance(res[-1]["diff"], list) else res[-1]["diff"]["after"]
    assert ('itshare /mnt/itcheck virtiofs ro,nofail,x-systemd.automount,'
            'context="system_u:object_r:public_content_t:s0" 0 0') in diffs["/mnt/itcheck"].splitlines()
    assert "itshare /mnt/itstrict virtiofs defaults 0 0" in diffs["/mnt/itstrict"].splitlines()
    assert guest.fstab() == before
    assert guest.ssh("ls -d /mnt/itcheck /mnt/itstrict 2>/dev/null || true").strip() == ""
    assert guest.findmnt("/mnt/itcheck") == []


def test_reboot_mounts_share_from_fstab_and_missing_tag_boots_multi_user(guest):
    # One reboot (a TCG reboot costs a minute and a half) proves both boot-time promises: the
    # share mounts again from its fstab line, and a line for a tag the domain does not offer
    # (prepared with state=present) lets the boot reach multi-user, never emergency mode.
    # Then a missing tag with state=mounted leaves fstab and the guest as they were.
    play = guest.role([{"tag": TAG, "path": MOUNT},
                       {"tag": MISSING_TAG, "path": MISSING_MOUNT, "state": "present"}])
    assert play.rc == 0, play.explain()
    line = f"{MISSING_TAG} {MISSING_MOUNT} virtiofs defaults,nofail 0 0"
    assert guest.fstab_lines().count(line) == 1, guest.fstab()
    fstab = guest.fstab()
    token = f"after reboot {secrets.token_hex(8)}\n"
    (guest.share / "after-reboot.txt").write_text(token)
    try:
        # With nofail the boot reaches multi-user (degraded: the mount unit failed), never
        # emergency mode; SSH would not come back from emergency mode.
        state = guest.reboot()
        assert state in ("running", "degraded"), state
        assert guest.ssh("systemctl is-active multi-user.target").strip() == "active"
        # the offered share is mounted again from fstab
        assert guest.findmnt(MOUNT) == [{"target": MOUNT, "source": TAG, "fstype": "virtiofs"}]
        assert guest.ssh("systemctl is-active mnt-itshare.mount").strip() == "active"
        assert guest.ssh(f"cat {MOUNT}/after-reboot.txt") == token
        # the missing one is not, and mounting it now fails with the translated message, both at
        # its fstab line's path and at a new path (one run for both); fstab stays as it was and
        # the mount point the run created is removed again
        assert guest.ssh("systemctl is-active mnt-itmissing.mount", check=False).strip() != "active"
        assert guest.findmnt(MISSING_MOUNT) == []
        play = guest.role([{"tag": MISSING_TAG, "path": MISSING_MOUNT}, {"tag": MISSING_TAG, "path": NEVER_MOUNT}])
        assert play.rc != 0, play.explain()
        failed = play.results("Report a tag the guest is not offered", guest.host)
        assert failed and failed[-1].get("failed"), play.explain()
        assert failed[-1]["msg"].startswith(NOT_OFFERED), failed[-1]["msg"]
        for path in (MISSING_MOUNT, NEVER_MOUNT):
            assert f"not found\" when mounting it on {path};" in failed[-1]["msg"], failed[-1]["msg"]
        assert guest.fstab() == fstab
        assert guest.findmnt(MISSING_MOUNT) == []
        assert guest.ssh(f"ls -d {NEVER_MOUNT} 2>/dev/null || true").strip() == ""
    finally:
        cleanup = guest.role([{"tag": MISSING_TAG, "path": MISSING_MOUNT, "state": "absent"}])
        assert cleanup.rc == 0, cleanup.explain()
    assert line not in guest.fstab_lines()


def test_absent_removes_mount_and_line(guest):
    play = guest.role([{"tag": TAG, "path": MOUNT}])
    assert play.rc == 0, play.explain()
    assert guest.findmnt(MOUNT)
    files_before = sorted(p.name for p in guest.share.iterdir())
    gone = guest.play("absent")
    assert gone.rc == 0, gone.explain()
    assert gone.stats(guest.host)["changed"] > 0
    assert guest.findmnt(MOUNT) == []
    assert not [ln for ln in guest.fstab_lines() if MOUNT in ln], guest.fstab()
    assert guest.ssh(f"test -e {MOUNT} && echo exists || echo gone").strip() == "gone"
    # The host's data is untouched.
    assert sorted(p.name for p in guest.share.iterdir()) == files_before
    again = guest.role([{"tag": TAG, "path": MOUNT, "state": "absent"}])
    assert again.rc == 0 and again.stats(guest.host)["changed"] == 0, again.explain()
