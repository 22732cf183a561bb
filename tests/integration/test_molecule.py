# SPDX-License-Identifier: GPL-3.0-or-later
"""The molecule scenario extensions/molecule/default on the real lab, as CI runs it.

``molecule test`` boots a guest clone on each of the lab's two hypervisors (Debian 12 / libvirt
9.0 with ``method: url``, Debian 13 / libvirt 11 with the role's default ``method: package``),
runs virtiofs.libvirt.site across both (install, wrapper, patch,
graceful restart, fstab mount), runs it again (molecule's idempotence check fails on any
change), verifies the file exchange both ways, the fstab line and the running daemon's options,
and destroys the clone. Skips (with the reason) when the lab is not up.
"""
from __future__ import annotations

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


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH",
                   str(Path(os.environ.get("VIRTIOFS_DEV_HOME", Path.home() / ".cache/virtiofs-libvirt")) / "collections"))
    for key in ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_RESULT_FORMAT"):
        env.pop(key, None)  # molecule reads the default callback's recap lines
    env.update({"PY_COLORS": "0", "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    return env


@pytest.mark.slow
def test_molecule_default_scenario(lab):
    # one stream, in order: molecule's step markers (stderr) around ansible's recaps (stdout)
    proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "--scenario-name", "default"], cwd=ROOT, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=2400, check=False)
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
    for uri, name in ((lab["uri"], DOMAIN), (lab["hypervisor2"]["uri"], DOMAIN + "2")):
        conn = libvirt.open(uri)
        try:
            assert name not in [d.name() for d in conn.listAllDomains()]
        finally:
            conn.close()
