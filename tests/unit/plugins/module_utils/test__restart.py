# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _restart over a fake /proc tree."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _restart

BTIME = 1_700_000_000
HZ = 100


def make_proc(tmp_path, pid, exe, start_ticks, comm="virtiofsd"):
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    (proc / "stat").write_text(f"cpu  1 2 3 4\nbtime {BTIME}\nprocesses 9\n")
    fields = ["S", "1"] + ["0"] * 17 + [str(start_ticks), "0", "0"]
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")
    os.symlink(exe, proc / str(pid) / "exe")
    return str(proc)


@pytest.fixture
def daemon(tmp_path):
    path = tmp_path / "virtiofsd"
    path.write_bytes(b"\x7fELF daemon")
    return path


def wrapper_at(tmp_path, mtime):
    path = tmp_path / "wrapper"
    path.write_text("#!/bin/sh\nexec /x/virtiofsd \"$@\"\n")
    os.utime(path, (mtime, mtime))
    return path


def test_boot_and_start_time(tmp_path, daemon):
    proc = make_proc(tmp_path, 42, str(daemon), 12345, comm="a) b (c")
    assert _restart.boot_time(proc) == BTIME
    assert _restart.start_time(42, proc, ticks=HZ) == BTIME + 123.45
    assert _restart.start_time(43, proc, ticks=HZ) is None


def test_boot_time_unreadable(tmp_path):
    assert _restart.boot_time(str(tmp_path)) is None


def test_nothing_changed(tmp_path, daemon):
    # a real process start is always after the wrapper's change time (the wrapper is older)
    start = os.stat(daemon).st_ctime + 100
    ticks = int((start - BTIME) * HZ)
    proc = make_proc(tmp_path, 7, str(daemon), ticks)
    wrapper = wrapper_at(tmp_path, start - 50)
    assert _restart.daemon_reasons("data", 7, str(wrapper), proc, ticks=HZ) == []
    assert _restart.daemon_reasons("data", 7, str(daemon), proc, ticks=HZ) == []
    assert _restart.daemon_reasons("data", 7, None, proc, ticks=HZ) == []


def test_deleted_executable(tmp_path, daemon):
    proc = make_proc(tmp_path, 7, f"{daemon} (deleted)", 10**12)
    reasons = _restart.daemon_reasons("data", 7, None, proc, ticks=HZ)
    assert len(reasons) == 1
    assert f"runs {daemon}, which was deleted or replaced" in reasons[0]
    assert "'data'" in reasons[0] and "pid 7" in reasons[0]


def test_replaced_executable_stat_differs(tmp_path, daemon, monkeypatch):
    proc = make_proc(tmp_path, 7, str(daemon), 10**12)
    real_stat = os.stat

    def fake_stat(path, *a, **kw):
        st = real_stat(path, *a, **kw)
        if str(path).endswith("/exe"):
            return os.stat_result((st.st_mode, st.st_ino + 1) + tuple(st)[2:])
        return st

    monkeypatch.setattr(_restart.os, "stat", fake_stat)
    reasons = _restart.daemon_reasons("data", 7, None, proc, ticks=HZ)
    assert len(reasons) == 1
    assert f"{daemon} was replaced (new inode)" in reasons[0]


def test_wrapper_newer_than_daemon(tmp_path, daemon):
    start = BTIME + 500.0
    proc = make_proc(tmp_path, 9, str(daemon), int(500 * HZ))
    wrapper = wrapper_at(tmp_path, start + 10)
    reasons = _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=HZ)
    assert len(reasons) == 1
    assert f"{wrapper} changed after its virtiofsd (pid 9) started" in reasons[0]


def test_wrapper_ctime_counts(tmp_path, daemon):
    proc = make_proc(tmp_path, 9, str(daemon), int(500 * HZ))
    wrapper = wrapper_at(tmp_path, BTIME)  # old mtime, but the file was written (ctime) just now
    reasons = _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=HZ)
    assert len(reasons) == 1 and str(wrapper) in reasons[0]


def test_wrapper_within_clock_slack_is_not_reported(tmp_path, daemon):
    # the daemon "starts" in the future, so the wrapper's ctime (now) is older than it
    start = time.time() + 1000
    proc = make_proc(tmp_path, 9, str(daemon), int((start - BTIME) * HZ))
    wrapper = wrapper_at(tmp_path, start + _restart.CLOCK_SLACK / 2)
    assert _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=HZ) == []
    os.utime(wrapper, (start + 2 * _restart.CLOCK_SLACK, start + 2 * _restart.CLOCK_SLACK))
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=HZ)) == 1


def test_wrapper_missing_or_process_unreadable(tmp_path, daemon):
    proc = make_proc(tmp_path, 9, str(daemon), 0)
    assert _restart.daemon_reasons("data", 9, str(tmp_path / "gone"), proc, ticks=HZ) == []
    assert _restart.daemon_reasons("data", 10, str(daemon), proc, ticks=HZ) == []


def test_domain_reasons_skips_sockets_and_missing_daemons(tmp_path, daemon):
    proc = make_proc(tmp_path, 9, f"{daemon} (deleted)", 0)
    shares = [
        {"tag": "a", "binary_path": None, "source_socket": None},
        {"tag": "b", "binary_path": None, "source_socket": "/run/x.sock"},
        {"tag": "c", "binary_path": None, "source_socket": None},
    ]
    asked = []

    def find(share):
        asked.append(share["tag"])
        return 9 if share["tag"] == "a" else None

    reasons = _restart.domain_reasons(shares, find, proc, ticks=HZ)
    assert asked == ["a", "c"]
    assert len(reasons) == 1 and reasons[0].startswith("share 'a'")
