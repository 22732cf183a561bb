# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file that may not be there.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import typing as t


def read_bytes(path: str, size: int = -1, best_effort: bool = False) -> t.Optional[bytes]:
    """The bytes of ``path`` (at most ``size`` of them), ``None`` when it does not exist.

    Other ``OSError`` s are raised, unless ``best_effort``: then they give ``None`` too (for
    files that may vanish or be unreadable while they are read, such as pid files and
    ``/proc/<pid>/...`` of a process that just ended).
    """
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:
        return None
    except OSError:
        if best_effort:
            return None
        raise
