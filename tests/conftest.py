# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ``ansible_collections.virtiofs.libvirt``.

When the checkout already sits at ``.../ansible_collections/virtiofs/libvirt`` nothing is
done; otherwise the collections tree that ``tests/bin/setup-venv`` creates (a symlink to
this checkout) is put on ``sys.path``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collections_root() -> Path:
    if ROOT.parent.name == "virtiofs" and ROOT.parent.parent.name == "ansible_collections":
        return ROOT.parent.parent.parent
    base = Path(os.environ.get("VIRTIOFS_DEV_HOME", Path.home() / ".cache" / "virtiofs-libvirt"))
    link = base / "collections" / "ansible_collections" / "virtiofs" / "libvirt"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == ROOT):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT)
    return base / "collections"


COLLECTIONS_ROOT = _collections_root()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
