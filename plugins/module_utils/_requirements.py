# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Python libraries the modules need on the managed host, and the error when one is missing.

Private module_utils: other collections must not import it.

The message comes from Ansible's ``missing_required_lib`` (the wording every collection
uses); the import traceback goes into ``fail_json``'s ``exception``.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import HAS_LXML, LXML_IMPORT_ERROR
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR

#: library name (as ``missing_required_lib`` prints it) -> (importable, import traceback)
LIBRARIES: t.Dict[str, t.Tuple[bool, t.Optional[str]]] = {
    "lxml": (HAS_LXML, LXML_IMPORT_ERROR),
    "libvirt-python": (HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR),
}


class MissingLibrary(Exception):
    """A Python library the module needs is not installed on the managed host."""

    def __init__(self, library: str, exception: t.Optional[str]) -> None:
        super().__init__(missing_required_lib(library))
        self.library = library
        self.exception = exception


def require(*libraries: str) -> None:
    """Raise :class:`MissingLibrary` for the first of ``libraries`` that cannot be imported."""
    for name in libraries:
        importable, error = LIBRARIES[name]
        if not importable:
            raise MissingLibrary(name, error)


def fail_arguments(exc: BaseException) -> t.Dict[str, t.Any]:
    """The ``fail_json`` keyword arguments for ``exc``, the one failure path of every module.

    ``msg`` is the exception's text (for :class:`MissingLibrary` Ansible's ``missing_required_lib``
    wording); ``exception`` is the import traceback of a missing library; ``libvirt_version`` is
    the host's libvirt version when the error was found after connecting (share validation).
    """
    arguments: t.Dict[str, t.Any] = {"msg": str(exc)}
    for key in ("exception", "libvirt_version"):
        value = getattr(exc, key, None)
        if value:
            arguments[key] = value
    return arguments
