# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _libvirt_features as lf


@pytest.mark.parametrize(
    "name, since",
    [
        ("virtiofs", "6.2.0"),
        ("memfd", "6.9.0"),
        ("boot", "7.1.0"),
        ("sandbox", "7.2.0"),
        ("thread_pool", "8.5.0"),
        ("idmap", "10.0.0"),
        ("openfiles", "10.6.0"),
        ("readonly", "11.0.0"),
        ("packed", "6.3.0"),
    ],
)
def test_table_versions(name, since):
    assert lf.FEATURES[name].since_string == since


def test_host_version_forms():
    assert lf.host_version(9000000) == (9, 0, 0)
    assert lf.host_version(10006001) == (10, 6, 1)
    assert lf.host_version("11.0") == (11, 0, 0)
    assert lf.host_version((8, 5)) == (8, 5, 0)


@pytest.mark.parametrize(
    "name, version, expected",
    [
        ("thread_pool", "8.4.9", False),
        ("thread_pool", "8.5.0", True),
        ("readonly", 9000000, False),
        ("readonly", 11000000, True),
        ("openfiles", "10.5.0", False),
        ("openfiles", "10.6.0", True),
        ("sandbox", "7.1.0", False),
    ],
)
def test_supports(name, version, expected):
    assert lf.supports(name, version) is expected


def test_check_features_passes_on_new_enough_host():
    lf.check_features(["virtiofs", "sandbox", "thread_pool", "memfd"], "9.0.0")


def test_check_features_names_feature_needed_and_host_version():
    with pytest.raises(lf.LibvirtFeatureError) as exc:
        lf.check_features(["virtiofs", "readonly", "openfiles", "idmap", "readonly"], 9000000, context="share 'data'")
    msg = str(exc.value)
    assert msg.startswith("share 'data': ")
    assert "feature 'idmap' (<filesystem><idmap>) needs libvirt >= 10.0.0, this host has libvirt 9.0.0" in msg
    assert "feature 'openfiles' (<binary><openfiles max='N'/>) needs libvirt >= 10.6.0, this host has libvirt 9.0.0" in msg
    assert "feature 'readonly' (<filesystem><readonly/>) needs libvirt >= 11.0.0, this host has libvirt 9.0.0" in msg
    assert [f.name for f in exc.value.missing] == ["idmap", "openfiles", "readonly"]
    assert msg.endswith(". Remove the option(s) or upgrade libvirt on the host.")


def test_unknown_feature_is_an_error():
    with pytest.raises(lf.LibvirtFeatureError, match="unknown libvirt feature 'bogus'"):
        lf.check_features(["bogus"], "11.0.0")


def test_option_features_all_in_table():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import OPTION_FEATURES

    for feature in OPTION_FEATURES.values():
        assert feature in lf.FEATURES
    assert {row["name"] for row in lf.table()} == set(lf.FEATURES)
