# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import errno

import pytest

import os

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import is_leftover, read_bytes, write_atomic


def test_read_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"#!/bin/sh\nexec x\n")
    assert read_bytes(str(path)) == b"#!/bin/sh\nexec x\n"
    assert read_bytes(str(path), 4) == b"#!/b"
    assert read_bytes(str(tmp_path / "missing")) is None
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path))
    assert read_bytes(str(tmp_path), best_effort=True) is None


def test_write_atomic_replaces_and_sets_mode(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    write_atomic(str(path), "new\n", mode=0o640)
    assert path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o7777 == 0o640
    write_atomic(str(path), b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_write_atomic_uses_the_given_move(tmp_path):
    moves = []

    def move(src, dest):
        moves.append((os.path.basename(src), dest))
        assert is_leftover(os.path.basename(src))
        assert open(src).read() == "data"  # complete before the move
        os.replace(src, dest)

    write_atomic(str(tmp_path / "g"), "data", move=move)
    assert moves and moves[0][1] == str(tmp_path / "g")
    assert (tmp_path / "g").read_text() == "data"


def test_write_atomic_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")

    def move(src, dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        write_atomic(str(path), "new", move=move)
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_is_leftover():
    assert is_leftover(".virtiofs-libvirt-abc123.tmp")
    assert not is_leftover("virtiofs-libvirt-abc.tmp")
    assert not is_leftover(".virtiofs-libvirt-abc.xml")
