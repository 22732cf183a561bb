# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests never write the host's own records: the wrapper's mode-repair records go to a temporary directory."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def repair_dir(monkeypatch, tmp_path_factory):
    """``_restart.REPAIR_DIR`` of this test (a fresh directory, not yet created; not under ``tmp_path``)."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _restart

    path = tmp_path_factory.mktemp("repairs") / "attribute-repairs"
    monkeypatch.setattr(_restart, "REPAIR_DIR", str(path))
    return path


@pytest.fixture
def daemon(tmp_path):
    """A fake Rust virtiofsd 1.13.2 (answers --version, --help, --print-capabilities from the
    fixtures); a test module may define its own ``daemon``."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "plugins" / "module_utils" / "fixtures"
    path = tmp_path / "virtiofsd"
    path.write_text(
        "#!/usr/bin/python3\nimport sys\n"
        f"d = {str(fixtures)!r} + '/virtiofsd-rust-1.13.2-'\n"
        "a = sys.argv[1:]\n"
        "name = 'version' if '--version' in a else 'help' if '--help' in a else 'capabilities.json'\n"
        "name = name if name.endswith('.json') else name + '.txt'\n"
        "sys.stdout.write(open(d + name).read())\n"
    )
    path.chmod(0o755)
    return str(path)
