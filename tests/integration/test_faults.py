# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults and races on the real lab (issue 12): whatever is written is whole, concurrent runs lose nothing.

* SIGKILL: real ``ansible-playbook`` processes that run a module in a loop (toggling between two
  states) are killed with SIGKILL (the whole process group, so the module process dies too) at
  random points after the module started, for an ``xml_file`` (share module), a wrapper
  (virtiofsd_wrapper) and a defined domain. After each kill the file (definition) is the old one or
  the new one byte for byte, and the next full run converges to the expected bytes with no
  temporary file left behind.
* Disk full: a small tmpfs holding an ``xml_file`` and a wrapper is filled; both modules fail with
  a message naming the file, saying the disk is full and the file was not changed; the bytes are
  unchanged; after freeing space the next run converges and the one after changes nothing.
* libvirtd going away between two domains of one ``domains:`` run (hypervisor2's libvirtd, stopped
  from the test while the run waits for the second domain's lock): the first domain is converged,
  the error names the second one as failed and the first as converged, and with libvirtd back the
  next run converges the second and changes nothing on the first.
* Concurrency: eight ``ansible-playbook`` processes started at once against one domain, one
  ``xml_file`` and one wrapper path.

Domains are called ``it-faults-*`` (SSH ports 2250-2259, never booted); files live in
/opt/it-faults and /srv/it-faults; everything is removed afterwards. Kills and processes are
bounded in count; the random delays come from a seeded generator (the seed is in the messages).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libvirt
import pytest
from lxml import etree


def _conftest():
    spec = importlib.util.spec_from_file_location("faults_conftest", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["faults_conftest"] = mod
    spec.loader.exec_module(mod)
    return mod


_CONF = _conftest()
ROOT, VENV_BIN, ansible_env = _CONF.ROOT, _CONF.VENV_BIN, _CONF.ansible_env

BASE = Path("/opt/it-faults")
BINARY = BASE / "virtiofsd"
SRC = Path("/srv/it-faults")
KILLS = 6  # per kind
CONCURRENT = 8
SEED = int(os.environ.get("VIRTIOFS_FAULTS_SEED", str(int(time.time()))))
TMP_PREFIX = ".virtiofs-libvirt-"

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def rust_binary(copy_rust_binary):
    BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(BASE, 0o755)
    return copy_rust_binary(BINARY)


@pytest.fixture(scope="module")
def rng():
    return random.Random(SEED)


# ------------------------------------------------------------------ helpers

def play_file(text: str) -> str:
    f = tempfile.NamedTemporaryFile("w", suffix=".yml", dir=ROOT / "tests" / "integration", delete=False,
                                    prefix=".tmp-play-")
    f.write(text)
    f.close()
    return f.name


def start(lab, playbook: str, extra_vars: dict) -> subprocess.Popen:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", lab["inventory"], playbook, "-e", json.dumps(extra_vars)]
    # no pipelining here: the kill tests find the module's process by its AnsiballZ_<module>.py
    # file on the command line, which a pipelined module (fed to python on stdin) does not have
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ansible_env({"ANSIBLE_PIPELINING": "False"}), cwd=ROOT, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: int = 600) -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=timeout)
    try:
        data = json.loads(out[out.index("{"):]) if "{" in out else {}
    except ValueError:
        data = {}
    return proc.returncode, data, out[-4000:] + err[-2000:]


def task_results(data: dict, name: str) -> list[dict]:
    found = []
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            if task.get("task", {}).get("name") == name:
                found.extend(task.get("hosts", {}).values())
    return found


def run(lab, text: str, extra_vars: dict) -> tuple[int, dict, str]:
    path = play_file(text)
    try:
        return finish(start(lab, path, extra_vars))
    finally:
        os.unlink(path)


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants (Ansible's workers may start their own sessions)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def module_pids(root: int, module: str) -> list[int]:
    """PIDs of the AnsiballZ processes of ``module`` below the process ``root``."""
    pids = []
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"AnsiballZ_{module}.py".encode() in cmdline:
            pids.append(pid)
    return pids


def freeze_tree(pid: int) -> list[int]:
    """SIGSTOP ``pid`` and its descendants until no new one appears; returns them all.

    Killing a listed tree one by one races with forks: a worker started after the listing (the
    next loop item's module) would survive as an orphan and change the domain after the test has
    read it. Stopped processes cannot fork, so once a listing brings no new PID the set is whole.
    """
    stopped: list[int] = []
    while True:
        new = [p for p in descendants(pid) if p not in stopped]
        if not new:
            return stopped
        for p in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
        stopped.extend(new)


def kill_during_module(lab, rng, text: str, extra_vars: dict, module: str, window: float) -> bool:
    """Start the playbook, wait for the module, SIGKILL the process and all its descendants ``0..window`` s later.

    Returns True when the module was running when it was killed.
    """
    path = play_file(text)
    try:
        proc = start(lab, path, extra_vars)
        deadline = time.monotonic() + 60
        while not module_pids(proc.pid, module) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, window))
        hit = bool(module_pids(proc.pid, module))
        victims = freeze_tree(proc.pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        # none of the killed processes may survive (a module reparented to init included)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and b"AnsiballZ" in Path(f"/proc/{pid}/cmdline").read_bytes()
                  for pid in victims if Path(f"/proc/{pid}/cmdline").exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return hit
    finally:
        os.unlink(path)


def leftovers(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(TMP_PREFIX))


def inactive_xml(uri: str, name: str) -> str:
    conn = libvirt.open(uri)
    try:
        return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def tags_of(xml: str | bytes) -> list[str]:
    root = etree.fromstring(xml if isinstance(xml, bytes) else xml.encode())
    return [fs.find("target").get("dir") for fs in root.iterfind("devices/filesystem")]


def lab_domain_xml(lab) -> bytes:
    """The lab domain's definition, as a base for xml_file tests (read only)."""
    xml = inactive_xml(lab["uri"], lab["domain"])
    root = etree.fromstring(xml.encode())
    for fs in root.findall("devices/filesystem"):
        fs.getparent().remove(fs)
    return etree.tostring(root)


# ------------------------------------------------------------------ playbooks

XML_FILE_LOOP = """
- name: xml_file loop
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        xml_file: "{{ it_file }}"
        tag: "{{ it_tag }}"
        source: "{{ it_source }}"
        state: "{{ item }}"
      loop: "{{ it_states }}"
"""

WRAPPER_LOOP = """
- name: wrapper loop
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Wrapper
      virtiofs.libvirt.virtiofsd_wrapper:
        path: "{{ it_path }}"
        binary: "{{ it_binary }}"
        options: {log_level: "{{ item }}"}
      loop: "{{ it_levels }}"
"""

DOMAIN_LOOP = """
- name: domain loop
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: "{{ it_domain }}"
        tag: "{{ it_tag }}"
        source: "{{ it_source }}"
        state: "{{ item }}"
      loop: "{{ it_states }}"
"""


def ok(rc: int, data: dict, tail: str) -> None:
    assert rc == 0, tail
    stats = data.get("stats", {})
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in stats.values()), tail


# ------------------------------------------------------------------ SIGKILL

def kill_and_recover(lab, rng, play: str, common: dict, loop_key: str, expected: dict, module: str, task: str,
                     window: float, read, directory: Path | None = None, check=None) -> None:
    """``KILLS`` times: SIGKILL a run of ``play`` that loops between the two values of ``expected``
    (value -> the content then); the content (``read()``) is one of the two whole (``check(i)`` for
    more), the next run to the other value changes it to that value's content and (``directory``)
    leaves no temporary file. At least half of the kills must hit the running module."""
    (first, first_content), (second, second_content) = expected.items()
    hits = 0
    for i in range(KILLS):
        hits += kill_during_module(lab, rng, play, {**common, loop_key: [first, second] * 20}, module, window)
        now = read()
        assert now in (first_content, second_content), f"kill {i} (seed {SEED}) left a partial result: {now[-300:]!r}"
        if check is not None:
            check(i)
        want = first if now == second_content else second
        rc, data, tail = run(lab, play, {**common, loop_key: [want]})
        ok(rc, data, tail)
        assert task_results(data, task)[0]["results"][0]["changed"] is True
        assert read() == expected[want]
        if directory is not None:
            assert leftovers(directory) == [], f"kill {i} (seed {SEED})"
    assert hits >= KILLS // 2, f"only {hits} of {KILLS} kills hit the running module (seed {SEED})"


def test_sigkill_xml_file_is_old_or_new(lab, rng):
    directory = BASE / "kill-xml"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (SRC / "k").mkdir(parents=True, exist_ok=True)
    path = directory / "dom.xml"
    base = lab_domain_xml(lab)
    path.write_bytes(base)
    common = {"it_file": str(path), "it_tag": "k", "it_source": str(SRC / "k")}
    try:
        ok(*run(lab, XML_FILE_LOOP, {**common, "it_states": ["present"]}))
        with_share = path.read_bytes()
        assert tags_of(with_share) == ["k"]
        ok(*run(lab, XML_FILE_LOOP, {**common, "it_states": ["absent"]}))
        without = path.read_bytes()
        assert tags_of(without) == []
        kill_and_recover(lab, rng, XML_FILE_LOOP, common, "it_states", {"present": with_share, "absent": without},
                         "share", "Share", 2.0, path.read_bytes, directory=directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_sigkill_wrapper_is_old_or_new(lab, rng, rust_binary):
    directory = BASE / "kill-wrapper"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o755, parents=True)
    path = directory / "virtiofsd.sh"
    common = {"it_path": str(path), "it_binary": rust_binary}
    try:
        ok(*run(lab, WRAPPER_LOOP, {**common, "it_levels": ["debug"]}))
        debug = path.read_bytes()
        ok(*run(lab, WRAPPER_LOOP, {**common, "it_levels": ["info"]}))
        info = path.read_bytes()
        assert debug != info and b"--log-level=debug" in debug and b"--log-level=info" in info

        def root_owned(i: int) -> None:
            st = path.stat()
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o755, 0, 0), f"kill {i}: {oct(st.st_mode)}"

        kill_and_recover(lab, rng, WRAPPER_LOOP, common, "it_levels", {"debug": debug, "info": info},
                         "virtiofsd_wrapper", "Wrapper", 3.0, path.read_bytes, directory=directory, check=root_owned)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_sigkill_defined_domain_is_old_or_new(lab, labctl, rng):
    name = "it-faults-kill"
    (SRC / "kd").mkdir(parents=True, exist_ok=True)
    common = {"it_domain": name, "it_tag": "kd", "it_source": str(SRC / "kd")}
    try:
        labctl.clone_guest(name, 2250, start=False, wait=False)
        ok(*run(lab, DOMAIN_LOOP, {**common, "it_states": ["present"]}))
        with_share = inactive_xml(lab["uri"], name)
        ok(*run(lab, DOMAIN_LOOP, {**common, "it_states": ["absent"]}))
        without = inactive_xml(lab["uri"], name)
        assert tags_of(with_share) == ["kd"] and tags_of(without) == []
        kill_and_recover(lab, rng, DOMAIN_LOOP, common, "it_states", {"present": with_share, "absent": without},
                         "share", "Share", 2.0, lambda: inactive_xml(lab["uri"], name))
    finally:
        labctl.destroy_guest(name)


# ------------------------------------------------------------------ disk full

def test_disk_full_keeps_the_old_files(lab, rust_binary):
    mnt = BASE / "full"
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "it-faults-full", str(mnt)], check=True)
    xml_path, wrapper = mnt / "dom.xml", mnt / "virtiofsd.sh"
    (SRC / "full").mkdir(parents=True, exist_ok=True)
    xml_vars = {"it_file": str(xml_path), "it_tag": "full", "it_source": str(SRC / "full"), "it_states": ["present"]}
    wrapper_vars = {"it_path": str(wrapper), "it_binary": rust_binary}
    try:
        xml_path.write_bytes(lab_domain_xml(lab))
        ok(*run(lab, WRAPPER_LOOP, {**wrapper_vars, "it_levels": ["info"]}))
        old_xml, old_wrapper = xml_path.read_bytes(), wrapper.read_bytes()
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        assert shutil.disk_usage(mnt).free < 4096

        rc, data, tail = run(lab, XML_FILE_LOOP, xml_vars)
        res = task_results(data, "Share")[0]["results"][0]
        assert rc != 0 and res.get("failed", True) is True, tail  # the json callback may drop "failed" of a loop item
        assert f"cannot write {xml_path}: the disk is full" in res["msg"], res["msg"]
        assert f"{xml_path} was not changed" in res["msg"], res["msg"]
        assert res.get("changed", False) is False
        assert xml_path.read_bytes() == old_xml

        rc, data, tail = run(lab, WRAPPER_LOOP, {**wrapper_vars, "it_levels": ["debug"]})
        res = task_results(data, "Wrapper")[0]["results"][0]
        assert rc != 0 and res.get("failed", True) is True, tail
        assert f"cannot write {wrapper}: the disk is full" in res["msg"], res["msg"]
        assert f"{wrapper} was not changed" in res["msg"], res["msg"]
        assert res.get("changed", False) is False
        assert wrapper.read_bytes() == old_wrapper
        assert sorted(os.listdir(mnt)) == ["dom.xml", "filler", "virtiofsd.sh"]

        # space again: both converge, and the run after that changes nothing
        filler.unlink()
        for expect in (True, False):
            rc, data, tail = run(lab, XML_FILE_LOOP, xml_vars)
            ok(rc, data, tail)
            assert task_results(data, "Share")[0]["results"][0]["changed"] is expect
            rc, data, tail = run(lab, WRAPPER_LOOP, {**wrapper_vars, "it_levels": ["debug"]})
            ok(rc, data, tail)
            assert task_results(data, "Wrapper")[0]["results"][0]["changed"] is expect
        assert tags_of(xml_path.read_bytes()) == ["full"]
        assert b"--log-level=debug" in wrapper.read_bytes()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        with contextlib.suppress(OSError):
            mnt.rmdir()


# ------------------------------------------------------------------ libvirtd going away

def _ns_libvirtd(labctl, lab2) -> list[int]:
    return [pid for pid, comm in labctl.hv2.ns_processes(lab2["init_pid"]) if comm == "libvirtd"]


def _start_libvirtd(labctl, lab2) -> None:
    labctl.hv2.ensure_libvirtd(lab2["init_pid"], Path(lab2["tree"]), labctl.run, "test", labctl.LabError,
                               lambda _msg: None)


@contextlib.contextmanager
def hold_domain_lock_on_hv2(lab2: dict, uuid: str):
    """Hold the module's per-domain lock (inside hypervisor2, its default URI) from this process."""
    key = hashlib.sha256(f"qemu:///system\0{uuid}".encode()).hexdigest()[:24]
    directory = Path(lab2["tree"]) / "run/lock/virtiofs-libvirt"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / f"domain-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


DOMAINS_PLAY = """
- name: Domains form on hypervisor2
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domains: "{{ it_domains }}"
        lock_timeout: 300
"""


def test_libvirtd_going_away_between_two_domains(lab, lab2, labctl):
    names = ("it-faults-a", "it-faults-b")
    uri = lab2["uri"]
    for n in names:
        (Path(lab2["tree"]) / "srv/it-faults" / n).mkdir(parents=True, exist_ok=True)
    extra = {"it_domains": [{"name": n, "shares": [{"tag": "away", "source": f"/srv/it-faults/{n}"}]} for n in names]}
    path = play_file(DOMAINS_PLAY)
    try:
        for n, port in zip(names, (2251, 2252)):
            labctl.clone_guest(n, port, start=False, wait=False, hypervisor="hypervisor2")
        conn = libvirt.open(uri)
        try:
            uuid_b = conn.lookupByName(names[1]).UUIDString()
        finally:
            conn.close()
        before_b = inactive_xml(uri, names[1])

        with hold_domain_lock_on_hv2(lab2, uuid_b):
            proc = start(lab, path, extra)
            deadline = time.monotonic() + 300
            while tags_of(inactive_xml(uri, names[0])) != ["away"]:
                assert proc.poll() is None and time.monotonic() < deadline, finish(proc)[2]
                time.sleep(0.1)
            time.sleep(2)  # the run is past the first domain, waiting for the second one's lock
            assert proc.poll() is None
            labctl.hv2.stop_libvirtd(lab2["init_pid"], Path(lab2["tree"]))
            assert not _ns_libvirtd(labctl, lab2), "hypervisor2's libvirtd did not stop"
        rc, data, tail = finish(proc)
        assert rc != 0, tail
        res = task_results(data, "Share")[0]
        assert res["failed"] is True, res
        assert res["msg"].startswith(
            f"1 of 2 domains failed ('{names[1]}'); the other 1 converged ('{names[0]}'): "
            f"domain '{names[1]}': libvirt connection lost (cannot read the definition of domain '{names[1]}'"
        ), res["msg"]
        assert res["msg"].endswith(
            "): nothing was defined for it. Run again once libvirtd is reachable"
        ), res["msg"]
        doms = res["domains"]
        assert (doms[names[0]]["failed"], doms[names[0]]["changed"]) == (False, True), doms[names[0]]
        assert (doms[names[1]]["failed"], doms[names[1]]["changed"]) == (True, False), doms[names[1]]
        assert res["changed"] is True

        _start_libvirtd(labctl, lab2)
        assert inactive_xml(uri, names[1]) == before_b  # nothing was defined for the second domain
        after_a = inactive_xml(uri, names[0])
        rc, data, tail = finish(start(lab, path, extra))
        ok(rc, data, tail)
        doms = task_results(data, "Share")[0]["domains"]
        assert [doms[n]["changed"] for n in names] == [False, True]
        assert tags_of(inactive_xml(uri, names[1])) == ["away"]
        assert inactive_xml(uri, names[0]) == after_a
    finally:
        os.unlink(path)
        _start_libvirtd(labctl, lab2)
        for n in names:
            labctl.destroy_guest(n, hypervisor="hypervisor2")


# ------------------------------------------------------------------ concurrency

def start_all(lab, text: str, per_run: list[dict]) -> list[tuple[int, dict, str]]:
    path = play_file(text)
    try:
        procs = [start(lab, path, extra) for extra in per_run]
        return [finish(p) for p in procs]
    finally:
        os.unlink(path)


def test_eight_concurrent_runs_on_one_domain(lab, labctl):
    name = "it-faults-conc"
    for i in range(CONCURRENT):
        (SRC / f"c{i}").mkdir(parents=True, exist_ok=True)
    try:
        labctl.clone_guest(name, 2253, start=False, wait=False)
        results = start_all(lab, DOMAIN_LOOP, [
            {"it_domain": name, "it_tag": f"c{i}", "it_source": str(SRC / f"c{i}"), "it_states": ["present"]}
            for i in range(CONCURRENT)])
        for rc, data, tail in results:
            ok(rc, data, tail)
            assert task_results(data, "Share")[0]["results"][0]["changed"] is True
        assert sorted(tags_of(inactive_xml(lab["uri"], name))) == [f"c{i}" for i in range(CONCURRENT)]
    finally:
        labctl.destroy_guest(name)


def test_eight_concurrent_runs_on_one_xml_file(lab):
    directory = BASE / "conc-xml"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    path = directory / "dom.xml"
    path.write_bytes(lab_domain_xml(lab))
    for i in range(CONCURRENT):
        (SRC / f"x{i}").mkdir(parents=True, exist_ok=True)
    try:
        results = start_all(lab, XML_FILE_LOOP, [
            {"it_file": str(path), "it_tag": f"x{i}", "it_source": str(SRC / f"x{i}"), "it_states": ["present"]}
            for i in range(CONCURRENT)])
        for rc, data, tail in results:
            ok(rc, data, tail)
            assert task_results(data, "Share")[0]["results"][0]["changed"] is True
        assert sorted(tags_of(path.read_bytes())) == [f"x{i}" for i in range(CONCURRENT)]
        assert leftovers(directory) == []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_eight_concurrent_wrapper_runs_on_one_path(lab, rust_binary):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import render_script

    directory = BASE / "conc-wrapper"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o755, parents=True)
    path = directory / "virtiofsd.sh"
    play = """
- name: Concurrent wrapper
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Wrapper
      virtiofs.libvirt.virtiofsd_wrapper:
        path: "{{ it_path }}"
        binary: "{{ it_binary }}"
        options: {thread_pool_size: "{{ it_threads }}"}
"""
    try:
        results = start_all(lab, play, [{"it_path": str(path), "it_binary": rust_binary, "it_threads": i + 1}
                                        for i in range(CONCURRENT)])
        scripts = []
        for i, (rc, data, tail) in enumerate(results):
            ok(rc, data, tail)  # each run's self-test passed on the wrapper that run wrote
            res = task_results(data, "Wrapper")[0]
            assert f"--thread-pool-size={i + 1}" in res["argv"], res["argv"]
            scripts.append(render_script(rust_binary, res["argv"]).encode())
        final = path.read_bytes()
        assert final in scripts, final
        assert final.splitlines()[-1].count(b"--thread-pool-size=") == 1
        st = path.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o755, 0, 0)
        assert leftovers(directory) == []
        # the file left behind is a working wrapper: the next run with its options changes nothing
        threads = scripts.index(final) + 1
        rc, data, tail = run(lab, play, {"it_path": str(path), "it_binary": rust_binary, "it_threads": threads})
        ok(rc, data, tail)
        assert task_results(data, "Wrapper")[0]["changed"] is False
    finally:
        shutil.rmtree(directory, ignore_errors=True)
