# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd_wrapper module's own layer: path checks and state=absent (no daemon needed)."""
from __future__ import annotations

from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import argument_spec as options_spec
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import MARKER, STATES, render_script
from module_harness import argument_spec


def test_choices_come_from_module_utils(monkeypatch):
    spec = argument_spec("virtiofsd_wrapper", monkeypatch)["argument_spec"]
    assert spec["state"]["choices"] == list(STATES) == ["present", "absent"]
    assert spec["options"]["options"] == options_spec()
    assert sorted(spec["options"]["options"]["log_level"]["choices"]) == ["debug", "error", "info", "off", "trace", "warn"]


def test_relative_path_is_refused(run_module):
    res = run_module("virtiofsd_wrapper", {"path": "rel/w.sh", "binary": "/usr/libexec/virtiofsd"})
    assert res["failed"] is True
    assert res["changed"] is False
    assert res["msg"] == "path must be an absolute path, got 'rel/w.sh'"


def test_missing_binary_is_refused(run_module, tmp_path):
    res = run_module("virtiofsd_wrapper", {"path": str(tmp_path / "w.sh"), "binary": str(tmp_path / "nope")})
    assert res["failed"] is True
    assert res["msg"] == f"binary {tmp_path / 'nope'} does not exist; install virtiofsd first"
    assert not (tmp_path / "w.sh").exists()


def test_absent(run_module, tmp_path):
    path = tmp_path / "w.sh"
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent"})
    assert (res["changed"], res["path"], "failed" in res) == (False, str(path), False)

    path.write_text("#!/bin/sh\nexec /usr/libexec/virtiofsd \"$@\"\n")
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent"})
    assert res["failed"] is True
    assert res["msg"] == (f"{path} is not a wrapper written by this module (no '{MARKER}' header): refusing to "
                          "remove it; remove it yourself if it really is yours to delete")
    assert path.exists()

    script = render_script("/usr/libexec/virtiofsd", ["--cache", "never"])
    path.write_text(script)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent", "_ansible_check_mode": True,
                                           "_ansible_diff": True})
    assert res["changed"] is True
    assert res["diff"]["before"] == script and res["diff"]["after"] == ""
    assert path.exists()
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent"})
    assert res["changed"] is True
    assert not path.exists()


def test_a_held_lock_fails_with_one_message_and_changes_nothing(run_module, tmp_path, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _lock, _wrapper

    path = tmp_path / "w.sh"
    script = render_script("/usr/libexec/virtiofsd", [])
    path.write_text(script)
    monkeypatch.setattr(_wrapper, "path_lock", lambda p: _lock.path_lock(p, timeout=0))
    with _lock.path_lock(str(path)) as lock:
        res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent"})
    assert res["failed"] is True and res["changed"] is False and res["path"] == str(path)
    assert res["msg"] == f"another run holds the lock {lock} for {path} for more than 0 s; {path} was not changed"
    assert path.read_text() == script


def test_a_symlink_at_path_is_replaced_through_atomic_move_and_the_warning_names_its_target(run_module, tmp_path,
                                                                                            monkeypatch):
    """module.atomic_move renames over the link (it does not write through it); the warning is module.warn's."""
    import os
    from pathlib import Path

    from ansible.module_utils import basic

    warned: list = []
    original = basic.AnsibleModule.warn
    # recorded here: where the warning goes (the result, or the controller's display) depends on ansible-core's state
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg, *a, **kw: warned.append(msg) or original(
        self, msg, *a, **kw))

    fixtures = Path(__file__).parents[1] / "module_utils" / "fixtures"
    daemon = tmp_path / "virtiofsd"
    daemon.write_text(
        "#!/usr/bin/python3\nimport sys\n"
        f"d = {str(fixtures)!r} + '/virtiofsd-rust-1.13.2-'\n"
        "a = sys.argv[1:]\n"
        "name = 'version.txt' if '--version' in a else 'help.txt' if '--help' in a else 'capabilities.json'\n"
        "sys.stdout.write(open(d + name).read())\n")
    daemon.chmod(0o755)
    target = tmp_path / "v1.sh"
    target.write_text("#!/bin/sh\necho v1\n")
    target.chmod(0o700)
    path = tmp_path / "w.sh"
    path.symlink_to(target)
    warning = f"{path} is a symlink to {target}; it is replaced by a regular file, {target} is left unchanged"
    args = {"path": str(path), "binary": str(daemon), "_ansible_diff": True, "force": True}  # v1.sh is not ours

    res = run_module("virtiofsd_wrapper", dict(args, _ansible_check_mode=True))
    assert res["changed"] is True and warned == [warning], res
    assert res["diff"]["before_header"] == f"{path} (symlink -> {target})" and res["diff"]["before"] == ""
    assert path.is_symlink()
    if os.geteuid() != 0:
        return
    res = run_module("virtiofsd_wrapper", args)
    assert res["changed"] is True and warned == [warning, warning], res
    assert not path.is_symlink() and path.read_text() == render_script(str(daemon), [])
    assert os.stat(path).st_mode & 0o7777 == 0o755
    assert target.read_text() == "#!/bin/sh\necho v1\n" and target.stat().st_mode & 0o7777 == 0o700


def _record_warnings(monkeypatch):
    from ansible.module_utils import basic

    warned: list = []
    original = basic.AnsibleModule.warn
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg, *a, **kw: warned.append(msg) or original(
        self, msg, *a, **kw))
    return warned


def test_absent_on_a_symlink_removes_the_link_and_warns_through_the_module(run_module, tmp_path, monkeypatch):
    import os

    warned = _record_warnings(monkeypatch)
    target = tmp_path / "real.sh"
    script = render_script("/usr/libexec/virtiofsd", [])
    target.write_text(script)
    path = tmp_path / "w.sh"
    path.symlink_to(target)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent", "backup": True,
                                           "_ansible_diff": True})
    assert res["changed"] is True and "failed" not in res, res
    assert warned == [f"{path} is a symlink to {target}; the link is removed, {target} is left in place"]
    assert res["diff"]["before_header"] == f"{path} (symlink -> {target})" and res["diff"]["before"] == ""
    assert "backup_file" not in res and sorted(os.listdir(tmp_path)) == ["real.sh"]
    assert target.read_text() == script


def test_realpath_and_a_fresh_move_for_a_wrapper_others_can_change(run_module, tmp_path, monkeypatch, daemon):
    """realpath names the resolved directory; replacing a file others could change (force) calls atomic_move
    with keep_dest_attrs=False, so the new wrapper never carries the old owner on the way."""
    import os

    import pytest
    from ansible.module_utils import basic

    if os.geteuid() != 0:
        pytest.skip("the wrapper is written root-owned")
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to("real")
    path = tmp_path / "via" / "w.sh"
    resolved = os.path.join(os.path.realpath(tmp_path), "real", "w.sh")
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon})
    assert res["changed"] is True and res["realpath"] == resolved, res

    moves: list = []
    original = basic.AnsibleModule.atomic_move
    monkeypatch.setattr(basic.AnsibleModule, "atomic_move", lambda self, src, dest, *a, **kw: moves.append(
        kw.get("keep_dest_attrs", True)) or original(self, src, dest, *a, **kw))
    os.chown(resolved, 1000, 1000)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon})
    assert res["failed"] is True and "can be changed by users other than root" in res["msg"] and moves == []
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon, "force": True})
    assert res["changed"] is True and res["content_changed"] is True and moves == [False], res
    st = os.stat(resolved)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon, "options": {"cache": "never"}})
    assert res["changed"] is True and moves == [False, True]  # a trusted wrapper keeps atomic_move's default
