# SPDX-License-Identifier: GPL-3.0-or-later
"""The molecule scenario extensions/molecule/default on the real lab, as CI runs it.

``molecule test`` boots a guest clone on each of the lab's two hypervisors (Debian 12 / libvirt
9.0 with ``method: url``, Debian 13 / libvirt 11 with the role's default ``method: package``),
runs virtiofs.libvirt.site across both (install, wrapper, patch,
graceful restart, fstab mount), runs it again (molecule's idempotence check fails on any
change), verifies the file exchange both ways, the fstab line and the running daemon's options,
and destroys the clone. Skips (with the reason) when the lab is not up.

The scenario is also the fleet's rolling restart: ``virtiofs_serial: 1`` with
``virtiofs_host_restart: shutdown_start`` across both hypervisors. A recording callback
(tests/integration/callback_plugins/record_plays.py) keeps every playbook run's results, and
this test checks from them that the batches ran one hypervisor after the other, each restarting
its domain before the next began, and that one wrapper profile was rendered on both, each
validated against its own daemon.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DOMAIN = "it-host-molecule"
DOMAINS = {"hypervisor": DOMAIN, "hypervisor2": DOMAIN + "2"}
ROLE = "virtiofs.libvirt.host : "
HOST_PLAY = "Prepare the hypervisors and apply the virtio-fs shares"
# the role's default wrapper profile
WRAPPER_ARGV = ["--announce-submounts", "--inode-file-handles=prefer"]


def _env(record_dir: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH",
                   str(Path(os.environ.get("VIRTIOFS_DEV_HOME", Path.home() / ".cache/virtiofs-libvirt")) / "collections"))
    for key in ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_RESULT_FORMAT"):
        env.pop(key, None)  # molecule reads the default callback's recap lines
    env.update({"PY_COLORS": "0", "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    # the results of every playbook run, beside the default output
    env.update({"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "integration" / "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "record_plays", "VIRTIOFS_RECORD_DIR": str(record_dir)})
    return env


def _recorded(record_dir: Path, stem: str) -> list[dict]:
    """The recorded runs of ``<stem>.yml``, in the order they ran (ansible.posix.json's layout)."""
    return [json.loads(f.read_text()) for f in sorted(record_dir.glob(f"[0-9][0-9]-{stem}.json"))]


def _result(run: dict, name: str, host: str) -> dict:
    """The last result on ``host`` of the task called ``name``."""
    matches = [t["hosts"][host] for p in run["plays"] for t in p["tasks"]
               if t["task"]["name"] == name and host in t["hosts"]]
    assert matches, f"task {name!r} did not run on {host}"
    return matches[-1]


@pytest.mark.slow
def test_molecule_default_scenario(lab, tmp_path):
    record_dir = tmp_path / "record"
    # one stream, in order: molecule's step markers (stderr) around ansible's recaps (stdout)
    proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "--scenario-name", "default"], cwd=ROOT,
                          env=_env(record_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=2400, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out[-15000:]
    for step in ("create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"default > {step}: Executed: Successful", out), f"{step} did not succeed:\n{out[-6000:]}"
    # the idempotence run: every host reports changed=0
    idem = out[out.index("[default > idempotence] Executing"):out.index("[default > idempotence] Executed")]
    recaps = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", idem, re.M)
    assert {host for host, changed in recaps} == {"hypervisor", "hypervisor2", "molecule-guest", "molecule-guest2"}
    assert all(changed == "0" for host, changed in recaps), recaps
    assert "Check the guest side" in out and "Check the running daemon" in out
    # destroy removed the clones, on both hypervisors
    for uri, name in ((lab["uri"], DOMAINS["hypervisor"]), (lab["hypervisor2"]["uri"], DOMAINS["hypervisor2"])):
        conn = libvirt.open(uri)
        try:
            assert name not in [d.name() for d in conn.listAllDomains()]
        finally:
            conn.close()

    # ---- the rolling restart, from the recorded converge and idempotence runs
    runs = _recorded(record_dir, "converge")
    assert len(runs) == 2, sorted(p.name for p in record_dir.iterdir())
    converge, idempotence = runs
    # serial: 1 -> one batch per hypervisor, in inventory order, each restarting its domain
    plays = [p for p in converge["plays"] if p["play"]["name"] == HOST_PLAY and p["tasks"]]
    batches = [sorted({h for t in p["tasks"] for h in t["hosts"]}) for p in plays]
    assert batches == [["hypervisor"], ["hypervisor2"]], batches
    waits = {}
    for p in plays:
        for t in p["tasks"]:
            if t["task"]["name"].startswith(ROLE + "Wait until the domain is shut off"):
                (host,) = t["hosts"]
                assert t["hosts"][host]["status"] == "shutdown", t  # it did shut off
                waits[host] = t["task"]["duration"]
    assert set(waits) == {"hypervisor", "hypervisor2"}, waits
    assert waits["hypervisor"]["end"] < waits["hypervisor2"]["start"]  # one after the other
    for host, name in DOMAINS.items():
        # shut off, then started again: restarted (the guest's mount in verify proves the new definition)
        started = _result(converge, f"{ROLE}Start the domain {name}", host)
        assert started["changed"] is True and not started.get("failed"), started
        remembered = _result(converge, ROLE + "Remember which domains were restarted", host)
        assert remembered["ansible_facts"]["virtiofs_host_restarted"] == [name], remembered
    # one profile, rendered on both, each validated against its own daemon
    for host, binary in (("hypervisor", "/opt/virtiofs-molecule/virtiofsd"), ("hypervisor2", "/usr/libexec/virtiofsd")):
        (wrapper,) = _result(converge, ROLE + "Render the wrapper profiles", host)["results"]
        assert wrapper["binary"] == binary and wrapper["argv"] == WRAPPER_ARGV, wrapper
        assert re.match(r"^\d+\.\d+\.\d+$", wrapper["daemon_version"]), wrapper
    # the second run changed nothing on either hypervisor (molecule's recap check, from the results)
    assert idempotence["stats"]["hypervisor"]["changed"] == 0 and idempotence["stats"]["hypervisor2"]["changed"] == 0
    # verify: the daemon each libvirt started runs through that wrapper (its options last, in the
    # libvirt's own calling style), the wrapper on disk being the one the module renders
    (verify,) = _recorded(record_dir, "verify")
    for host in DOMAINS:
        asked = _result(verify, "Ask the wrapper module which options the default profile appends", host)
        assert asked["changed"] is False and asked["argv"] == WRAPPER_ARGV, asked
        checked = _result(verify, "Check the running daemon", host)
        assert not checked.get("failed") and not checked.get("skipped"), checked
