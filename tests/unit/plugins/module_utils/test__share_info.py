# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""share_info's report of one (inactive) domain, read from a fixture through a fake domain."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_info import ShareInfo

FIXTURES = Path(__file__).parent / "fixtures"


class FakeDomain:
    name = "pc-shares"
    uuid = "1b7e3c4a-8d52-4f6e-9a0b-2c1d3e4f5a6b"
    id = -1

    def inactive_xml(self):
        return (FIXTURES / "libvirt-9.0-qemu-pc-shares.xml").read_text()

    def is_active(self):
        return False

    def is_persistent(self):
        return True


def _never(argv):  # pragma: no cover - probe_binaries is off
    raise AssertionError(f"no binary may run: {argv}")


def test_inactive_domain_report_names_its_problems():
    info = ShareInfo({"domain": None, "uri": "qemu:///system", "probe_binaries": False}, _never)
    report = info.domain_report(FakeDomain(), None)
    assert (report["name"], report["active"], report["persistent"]) == ("pc-shares", False, True)
    assert report["restart_required"] is False and report["restart_reasons"] == []
    tags = [s["tag"] for s in report["shares"]]
    assert "data" in tags and "logs" in tags and "ninep" not in tags
    codes = {(p["code"], p["share"]) for p in report["problems"]}
    assert ("lock_present", "data") in codes
    assert ("no_rust_daemon", "logs") in codes  # no <binary path> and no descriptor
    assert ("source_missing", "data") in codes
    assert all("attached" not in s for s in report["shares"])  # inactive: no live facts


def test_probe_is_cached_and_names_a_missing_binary(tmp_path):
    calls = []
    exe = tmp_path / "virtiofsd"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)

    def run(argv):
        calls.append(argv)
        return 1, "", "boom"

    info = ShareInfo({"probe_binaries": True}, run)
    assert info.probe(None)["error"] == "no binary"
    assert info.probe(str(tmp_path / "absent"))["error"] == "not an executable file"
    first = info.probe(str(exe))
    assert first["implementation"] is None and first["error"]
    n = len(calls)
    assert n >= 1
    assert info.probe(str(exe)) is first and len(calls) == n
