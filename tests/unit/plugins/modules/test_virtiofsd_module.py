# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd module's own layer: choices and defaults from module_utils, one failure path."""
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import (
    DEFAULT_INSTALL_DIR,
    METHODS,
    STATES,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._vhost_user import CONF_DIR, DEFAULT_VHOST_USER_PRIORITY
from module_harness import argument_spec, load


def test_spec_uses_the_installer_constants(monkeypatch):
    spec = argument_spec("virtiofsd", monkeypatch)["argument_spec"]
    assert spec["method"]["choices"] == list(METHODS) == ["package", "url", "source"]
    assert spec["state"]["choices"] == list(STATES) == ["present", "absent"]
    assert spec["os_family"] == {"type": "str"}
    assert spec["distribution_major_version"] == {"type": "str"}
    assert spec["install_dir"]["default"] == DEFAULT_INSTALL_DIR
    assert spec["vhost_user_dir"]["default"] == CONF_DIR == "/etc/qemu/vhost-user"
    assert spec["vhost_user_priority"]["default"] == DEFAULT_VHOST_USER_PRIORITY


def test_installer_errors_fail_the_module_unchanged(run_module, tmp_path):
    install_dir = tmp_path / "opt"
    res = run_module("virtiofsd", {"method": "url", "url": "https://example.invalid/v.zip", "checksum": "md5:abc",
                                   "install_dir": str(install_dir), "vhost_user_dir": str(tmp_path / "vu")})
    assert res["failed"] is True
    assert res["changed"] is False
    assert res["method"] == "url"
    assert res["msg"] == "checksum algorithm 'md5' is not supported: only sha256 is (sha256:<64 hex digits>)"
    assert not install_dir.exists()

    res = run_module("virtiofsd", {"method": "url", "url": "http://example.invalid/v.zip", "checksum_required": False,
                                   "install_dir": str(install_dir), "vhost_user_dir": str(tmp_path / "vu")})
    assert res["msg"] == ("url 'http://example.invalid/v.zip' uses plain http: use https, or set allow_http=true to "
                          "accept an unencrypted download (the checksum still protects the content)")


def test_facts_options_reach_the_installer(run_module, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    class FakeInstaller:
        def __init__(self, request, host):
            seen["host"] = host
            raise Stop()

    monkeypatch.setattr(load("virtiofsd"), "Installer", FakeInstaller)
    with pytest.raises(Stop):
        run_module("virtiofsd", {"method": "package", "os_family": "Debian", "distribution_major_version": "12"})
    assert (seen["host"].os_family, seen["host"].distribution_major_version) == ("Debian", "12")
    with pytest.raises(Stop):
        run_module("virtiofsd", {"method": "package"})
    assert (seen["host"].os_family, seen["host"].distribution_major_version) == (None, None)


def test_result_has_binary_changed(run_module, tmp_path):
    res = run_module("virtiofsd", {"state": "absent", "install_dir": str(tmp_path / "opt"),
                                   "vhost_user_dir": str(tmp_path / "vu")})
    assert res["changed"] is False
    assert res["binary_changed"] is False


def test_an_os_error_is_the_same_one_failure_path(run_module, tmp_path, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _install

    def refuses(self):
        raise PermissionError(13, "Permission denied", "/opt/ro/virtiofsd")

    monkeypatch.setattr(_install.Installer, "present", refuses)
    res = run_module("virtiofsd", {"method": "url", "url": "https://example.invalid/v.zip", "checksum": "sha256:" + "a" * 64,
                                   "install_dir": str(tmp_path / "opt"), "vhost_user_dir": str(tmp_path / "vu")})
    assert res["failed"] is True and res["changed"] is False and res["method"] == "url"
    assert res["msg"] == "virtiofsd: [Errno 13] Permission denied: '/opt/ro/virtiofsd'"
    assert not (tmp_path / "opt").exists()
