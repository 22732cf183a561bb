# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd_wrapper module and a file at ``path`` it did not write (a copy of /bin/sh):
refused in check mode and in a real run, replaced with ``force: true`` (and ``backup: true``)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import MARKER, render_script
from module_harness import argument_spec


def test_force_is_a_bool_that_defaults_to_false(monkeypatch):
    spec = argument_spec("virtiofsd_wrapper", monkeypatch)["argument_spec"]
    assert spec["force"] == {"type": "bool", "default": False}


@pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")
def test_a_copy_of_sh_is_refused_then_replaced_with_force(run_module, tmp_path, daemon):
    path = tmp_path / "mysh"
    shutil.copyfile(Path("/bin/sh").resolve(), path)
    os.chmod(path, 0o755)
    content = path.read_bytes()
    st = os.stat(path)
    before = (st.st_ino, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)
    args = {"path": str(path), "binary": daemon}
    expected = (f"{path} exists and was not written by this module (an ELF binary without the '{MARKER}' header): "
                "refusing to replace it. Choose another path for the wrapper, or set force: true to replace it "
                "(with backup: true to keep a copy)")
    for extra in ({"_ansible_check_mode": True, "_ansible_diff": True}, {}, {"backup": True}):
        res = run_module("virtiofsd_wrapper", dict(args, **extra))
        assert res["failed"] is True and res["changed"] is False, res
        assert res["msg"] == expected
        assert "warnings" not in res and "backup_file" not in res and "diff" not in res
        st = os.stat(path)
        assert (st.st_ino, st.st_mode, st.st_mtime_ns, st.st_ctime_ns) == before and path.read_bytes() == content
    assert sorted(os.listdir(tmp_path)) == ["mysh", "virtiofsd"]

    res = run_module("virtiofsd_wrapper", dict(args, force=True, _ansible_check_mode=True))
    assert res["changed"] is True and "failed" not in res and path.read_bytes() == content
    res = run_module("virtiofsd_wrapper", dict(args, force=True, backup=True))
    assert res["changed"] is True and "failed" not in res, res
    assert Path(res["backup_file"]).read_bytes() == content
    assert path.read_text() == render_script(daemon, [])
    res = run_module("virtiofsd_wrapper", args)  # now its own wrapper: no force needed, nothing to do
    assert res["changed"] is False and "failed" not in res
