# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures for integration tests on the real lab (tests/lab/lab up).

- ``lab``: the lab state (lab.json); tests skip with a reason when the lab is not up.
- ``run_playbook(path_or_text, extra_vars=None, check=False, diff=False, limit=None, inventories=None)``:
  runs ansible-playbook against the lab inventory (plus ``inventories``) with the JSON callback and returns
  a ``PlaybookResult`` (rc, stdout, per-task results by task name).
- ``labctl``: the tests/lab/labctl.py module (clone_guest, destroy_guest, guest_ssh, wait_ssh).
- ``lab2``: the second hypervisor's part of the lab state (``lab["hypervisor2"]``: tree, uri,
  init_pid, libvirt_version, domain, ssh ports and keys).
- ``run_target(name, timeout=1800, host="hypervisor", extra_vars=None)``: runs
  ``targets/<name>/tasks/main.yml`` on ``host`` (``hypervisor`` or ``hypervisor2``),
  asserts it succeeded with no failed or unreachable host, and returns the ``PlaybookResult``.
- ``write_wrapper(path, binary, options=None, extra_args=None, check_rc=True)``: one
  ``virtiofsd_wrapper`` run through ``ansible-playbook``; the task's result.
- ``copy_rust_binary(dest)``: a test's own copy of the lab's Rust virtiofsd (tests must not
  touch the lab's), refreshed when the lab's binary changed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _load_labctl():
    spec = importlib.util.spec_from_file_location("labctl", ROOT / "tests" / "lab" / "labctl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LABCTL = _load_labctl()


@pytest.fixture(scope="session")
def labctl():
    return LABCTL


def _wait_for_background_lab() -> None:
    """tests/bin/run-tests brings the lab up in the background: wait for it, fail on its error."""
    rc_file = os.environ.get("VIRTIOFS_LAB_UP_RC")
    if not rc_file:
        return
    deadline = time.time() + 3600
    while not os.path.exists(rc_file):
        if time.time() > deadline:
            pytest.fail("tests/lab/lab up did not finish within an hour")
        time.sleep(2)
    rc = Path(rc_file).read_text().strip()
    if rc != "0":
        log = Path(os.environ.get("VIRTIOFS_LAB_UP_LOG", "/dev/null")).read_text()[-6000:]
        pytest.fail(f"tests/lab/lab up exited {rc}:\n{log}")


@pytest.fixture(scope="session")
def lab() -> dict:
    _wait_for_background_lab()
    state = LABCTL.load_state()
    if not state:
        if os.environ.get("VIRTIOFS_LAB_REQUIRED") == "1":
            pytest.fail("the lab is not up (no lab.json) although tests/bin/run-tests brought it up")
        pytest.skip("the lab is not up: run tests/lab/lab up (tests/bin/run-tests does)")
    return state


@pytest.fixture
def lab2(lab) -> dict:
    """The second hypervisor's part of the lab state (``lab["hypervisor2"]``).

    Function-scoped: a test that stops hypervisor2's libvirtd and fails before restarting it
    fails alone; the next test finds libvirtd answering again.
    """
    if "hypervisor2" not in lab:
        pytest.fail("the lab has no second hypervisor (lab.json has no 'hypervisor2'): run tests/lab/lab up")
    part = lab["hypervisor2"]
    LABCTL.hv2.ensure_libvirtd(part["init_pid"], Path(part["tree"]), LABCTL.run, "test", LABCTL.LabError,
                               lambda _msg: None)
    return part


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    def tasks(self, name: str) -> list[dict]:
        """Per-host results of every task called ``name`` (all plays), as ``{host: result}`` dicts."""
        found = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if task.get("task", {}).get("name") == name:
                    found.append(task.get("hosts", {}))
        return found

    def result(self, name: str, host: str = "hypervisor") -> dict:
        """The single result of task ``name`` on ``host``."""
        matches = [h[host] for h in self.tasks(name) if host in h]
        assert matches, f"task {name!r} did not run on {host}; rc={self.rc}\n{self.stderr[-3000:]}"
        return matches[-1]

    @property
    def stats(self) -> dict:
        return self.data.get("stats", {})

    def failed_tasks(self) -> str:
        """Name, host and message of every failed (not ignored, not rescued) task, for assertion messages."""
        lines = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    if res.get("failed") and not res.get("ignore_errors"):
                        lines.append(f"{task.get('task', {}).get('name')!r} on {host}: {str(res.get('msg'))[:1500]}")
        return "\n".join(lines[-5:])


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH",
                   str(Path(os.environ.get("VIRTIOFS_DEV_HOME", Path.home() / ".cache/virtiofs-libvirt")) / "collections"))
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    # one SSH round trip per task instead of four (mkdir, put, exec, rm): the TCG guests make each
    # remote shell cost seconds; the lab logs in as root, so no requiretty concern
    env.setdefault("ANSIBLE_PIPELINING", "True")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "False"
    env["ANSIBLE_ROLES_PATH"] = str(ROOT / "roles")
    if extra:
        env.update(extra)
    return env


@pytest.fixture
def run_playbook(lab):
    def _run(playbook, extra_vars: dict | None = None, check: bool = False, diff: bool = False,
             limit: str | None = None, timeout: int = 1800, env: dict | None = None,
             inventories: list | None = None) -> PlaybookResult:
        tmp = None
        path = Path(playbook) if not str(playbook).lstrip().startswith(("-", "[")) else None
        if path is None or not path.exists():
            tmp = tempfile.NamedTemporaryFile("w", suffix=".yml", dir=ROOT / "tests" / "integration", delete=False,
                                              prefix=".tmp-play-")
            tmp.write(str(playbook))
            tmp.close()
            path = Path(tmp.name)
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", lab["inventory"]]
        for extra_inventory in inventories or []:
            argv += ["-i", str(extra_inventory)]
        argv.append(str(path))
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if limit:
            argv += ["--limit", limit]
        try:
            proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, env=ansible_env(env), cwd=ROOT)
        finally:
            if tmp:
                os.unlink(tmp.name)
        try:
            data = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else {}
        except ValueError:
            data = {}
        return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, data)

    return _run


WRAPPER_PLAY = """
- name: Wrapper
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Write wrapper
      virtiofs.libvirt.virtiofsd_wrapper:
        path: "{{ wr_path }}"
        binary: "{{ wr_binary }}"
        options: "{{ wr_options | default(omit) }}"
        extra_args: "{{ wr_extra | default(omit) }}"
"""


@pytest.fixture
def write_wrapper(run_playbook):
    """``write_wrapper(path, binary, options=None, extra_args=None, check_rc=True)``: one run of
    ``virtiofs.libvirt.virtiofsd_wrapper`` (options not given are omitted); its task result."""
    def _write(path, binary: str, options: dict | None = None, extra_args: list | None = None,
               check_rc: bool = True) -> dict:
        extra = {"wr_path": str(path), "wr_binary": binary}
        if options is not None:
            extra["wr_options"] = options
        if extra_args is not None:
            extra["wr_extra"] = extra_args
        res = run_playbook(WRAPPER_PLAY, extra_vars=extra)
        if check_rc:
            assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        return res.result("Write wrapper")

    return _write


@pytest.fixture
def run_target(run_playbook, lab):
    def _run(name: str, timeout: int = 1800, host: str = "hypervisor", extra_vars: dict | None = None) -> PlaybookResult:
        target = ROOT / "tests" / "integration" / "targets" / name / "tasks" / "main.yml"
        res = run_playbook(
            f"""
- name: {name} target
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Run the target
      ansible.builtin.include_tasks: {target}
""",
            extra_vars={"lab_state_file": str(Path(lab["inventory"]).with_name("lab.json")), **(extra_vars or {})},
            timeout=timeout,
        )
        failed = [f"{task.get('task', {}).get('name')}: {result.get('msg')!r}"
                  for play in res.data.get("plays", []) for task in play.get("tasks", [])
                  for result in task.get("hosts", {}).values() if result.get("failed")]
        assert res.rc == 0, "failed tasks (ignored ones too):\n" + "\n".join(failed) + "\n" + res.stdout[-6000:] + res.stderr[-2000:]
        stats = res.stats[host]
        assert stats["failures"] == 0 and stats["unreachable"] == 0
        return res

    return _run


@pytest.fixture(scope="session")
def copy_rust_binary(lab):
    def _copy(dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = lab["virtiofsd_binary"]
        if not dest.exists() or dest.read_bytes() != Path(src).read_bytes():
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(src, tmp)
            tmp.chmod(0o755)
            tmp.replace(dest)
        return str(dest)

    return _copy
