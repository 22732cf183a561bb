# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The error of the virtiofsd installer (``_install``, ``_archive``, ``_download``, ``_cargo``).

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. One class in its own file so that the installer's parts can
raise it without importing each other.
"""

from __future__ import annotations


class InstallError(Exception):
    """A failure that leaves the system unchanged; the message names the problem and the fix."""

    #: the traceback of an unexpected ``OSError`` it stands for (see ``Installer.run``), else None
    exception = None
