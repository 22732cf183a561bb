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


# ------------------------------------------------------------------ mode-only repairs recorded by the wrapper module
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a repair record is trusted only when root-only")
NS = 10**9  # clock ticks per second of the fake /proc below: start times to the nanosecond


def proc_started_at(tmp_path, daemon, when):
    """A fake /proc with virtiofsd pid 9 started at ``when`` (seconds since the epoch)."""
    return make_proc(tmp_path, 9, str(daemon), int(round((when - BTIME) * NS)))


def repaired_wrapper(tmp_path, daemon, monkeypatch):
    """A wrapper whose mode drifted (0700), a daemon started after that, then the module's repair (recorded).

    Returns (wrapper, proc, the drifted file's stat)."""
    monkeypatch.setattr(_restart, "CLOCK_SLACK", 0.0)
    wrapper = tmp_path / "wrapper"
    content = b"#!/bin/sh\nexec /x/virtiofsd \"$@\"\n"
    wrapper.write_bytes(content)
    os.chmod(wrapper, 0o700)
    drifted = os.stat(wrapper)
    start = drifted.st_ctime_ns / NS + 0.02
    time.sleep(0.05)
    os.chmod(wrapper, 0o755)  # the repair: after the daemon started
    assert os.stat(wrapper).st_ctime > start
    assert _restart.record_attribute_repair(str(wrapper), drifted, content) is True
    return wrapper, proc_started_at(tmp_path, daemon, start), drifted


@needs_root
def test_a_recorded_mode_repair_is_not_a_change_of_the_wrapper(tmp_path, daemon, monkeypatch):
    wrapper, proc, drifted = repaired_wrapper(tmp_path, daemon, monkeypatch)
    assert _restart.changed_at(str(wrapper)) == pytest.approx(max(drifted.st_mtime_ns, drifted.st_ctime_ns) / NS, abs=1e-6)
    assert _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS) == []
    record = _restart._record_path(str(wrapper))
    assert os.path.dirname(record) == _restart.REPAIR_DIR
    st = os.lstat(record)
    assert (st.st_mode & 0o7777, st.st_uid) == (0o600, 0)

    _restart.forget_attribute_repair(str(wrapper))  # without the record: the ctime of the repair counts
    assert not os.path.lexists(record)
    assert _restart.changed_at(str(wrapper)) == os.stat(wrapper).st_ctime
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)) == 1


def rewrite_in_place_keeping_mtime(wrapper):
    """``cp -p``: other bytes (same size) into the same inode, the old mtime restored."""
    st = os.stat(wrapper)
    data = wrapper.read_bytes()
    wrapper.write_bytes(data.replace(b"/x/", b"/y/"))
    os.utime(wrapper, ns=(st.st_atime_ns, st.st_mtime_ns))


def replace_keeping_mtime(wrapper):
    """``install -p``: a new inode renamed over the wrapper, with the old mtime."""
    st = os.stat(wrapper)
    new = wrapper.with_name("new")
    new.write_bytes(b"#!/bin/sh\nexec /y/virtiofsd \"$@\"\n")
    os.chmod(new, 0o755)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    new.replace(wrapper)


def chmod_again(wrapper):
    os.chmod(wrapper, 0o750)


@needs_root
@pytest.mark.parametrize("change", [rewrite_in_place_keeping_mtime, replace_keeping_mtime, chmod_again],
                         ids=["cp-p", "install-p", "chmod"])
def test_any_change_after_the_repair_is_reported_again(tmp_path, daemon, monkeypatch, change):
    wrapper, proc, _drifted = repaired_wrapper(tmp_path, daemon, monkeypatch)
    time.sleep(0.02)
    change(wrapper)
    assert _restart.changed_at(str(wrapper)) == os.stat(wrapper).st_ctime
    reasons = _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)
    assert reasons == [f"share 'data': {wrapper} changed after its virtiofsd (pid 9) started: the daemon keeps the old "
                       "program and options until the domain is shut down and started"]


@needs_root
def test_other_bytes_with_the_recorded_ctime_are_reported(tmp_path, daemon, monkeypatch):
    """A rewrite within the same clock tick as the repair keeps the ctime: the bytes' hash tells it."""
    import json

    wrapper, proc, _drifted = repaired_wrapper(tmp_path, daemon, monkeypatch)
    rewrite_in_place_keeping_mtime(wrapper)
    record = _restart._record_path(str(wrapper))
    with open(record) as fh:
        data = json.load(fh)
    data["ctime_ns"] = os.stat(wrapper).st_ctime_ns  # as if the write had got the repair's ctime
    with open(record, "w") as fh:
        json.dump(data, fh)
    assert _restart.changed_at(str(wrapper)) == os.stat(wrapper).st_ctime
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)) == 1


@needs_root
def test_a_record_that_others_could_write_is_ignored(tmp_path, daemon, monkeypatch):
    wrapper, proc, _drifted = repaired_wrapper(tmp_path, daemon, monkeypatch)
    record = _restart._record_path(str(wrapper))
    os.chmod(record, 0o666)
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)) == 1
    os.chmod(record, 0o600)
    os.chmod(os.path.dirname(record), 0o777)
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)) == 1
    os.chmod(os.path.dirname(record), 0o700)
    assert _restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS) == []
    with open(record, "w") as fh:
        fh.write("not json")
    assert len(_restart.daemon_reasons("data", 9, str(wrapper), proc, ticks=NS)) == 1


def test_nothing_is_recorded_when_the_bytes_or_the_file_differ(tmp_path):
    wrapper = tmp_path / "wrapper"
    wrapper.write_bytes(b"#!/bin/sh\n")
    before = os.stat(wrapper)
    assert _restart.record_attribute_repair(str(wrapper), before, b"#!/bin/sh\nother\n") is False
    other = tmp_path / "other"
    other.write_bytes(b"#!/bin/sh\n")
    other.replace(wrapper)  # another inode than the one stat-ed before the repair
    assert _restart.record_attribute_repair(str(wrapper), before, b"#!/bin/sh\n") is False
    assert not os.path.lexists(_restart._record_path(str(wrapper)))
