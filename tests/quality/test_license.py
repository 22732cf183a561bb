# SPDX-License-Identifier: GPL-3.0-or-later
"""The licence galaxy.yml declares is the one LICENSE holds, and the build keeps LICENSE."""
from __future__ import annotations

import fnmatch

import yaml

from .conftest import ROOT


def test_license_file_is_the_gpl3_text():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007")
    assert "TERMS AND CONDITIONS" in text and "END OF TERMS AND CONDITIONS" in text
    assert "either version 3 of the License, or\n    (at your option) any later version." in text


def test_galaxy_license_matches_and_build_keeps_it():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    assert "license_file" not in galaxy  # galaxy.yml: mutually exclusive with license
    ignored = [p for p in galaxy.get("build_ignore", []) if fnmatch.fnmatch("LICENSE", p)]
    assert ignored == [], f"build_ignore drops LICENSE: {ignored}"
