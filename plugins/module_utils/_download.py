# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Downloading a virtiofsd release: https only (http on request), redirects checked, sha256 on the fly.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports: the module passes ``fetch`` (``fetch_url`` bound to the
module), tests pass a fake server.
"""

from __future__ import annotations

import hashlib
import typing as t

from ansible_collections.virtiofs.libvirt.plugins.module_utils._archive import CHUNK_SIZE
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError


def check_url(url: str, allow_http: bool) -> None:
    """Only https, or http when explicitly allowed."""
    scheme = (url or "").split(":", 1)[0].lower() if ":" in (url or "") else ""
    if scheme == "https":
        return
    if scheme == "http":
        if allow_http:
            return
        raise InstallError(
            f"url {url!r} uses plain http: use https, or set allow_http=true to accept an "
            "unencrypted download (the checksum still protects the content)"
        )
    raise InstallError(f"url {url!r} must start with https:// (or http:// with allow_http=true)")


def download(fetch: t.Callable[[str], t.Tuple[t.Any, t.Dict[str, t.Any]]], url: str, dest_path: str,
             allow_http: bool = False) -> str:
    """Download ``url`` to ``dest_path`` with ``fetch`` (``fetch_url``-shaped); return its sha256."""
    check_url(url, allow_http)
    try:
        resp, info = fetch(url)
    except Exception as exc:  # fetch_url raises only on programming errors, be safe anyway
        raise InstallError(f"download of {url} failed: {exc}") from None
    status = info.get("status")
    if resp is None or status != 200:
        raise InstallError(
            f"download of {url} failed: HTTP status {status}: {info.get('msg', 'no message')}; "
            "nothing was installed"
        )
    final = info.get("url") or url
    if final != url:
        try:
            check_url(final, allow_http)
        except InstallError as exc:
            raise InstallError(f"download of {url} was redirected to {final}: {exc}") from None
    h = hashlib.sha256()
    try:
        with open(dest_path, "wb") as out:
            for chunk in iter(lambda: resp.read(CHUNK_SIZE), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise InstallError(f"download of {url} failed while reading: {exc}") from None
    finally:
        close = getattr(resp, "close", None)
        if close:
            close()
    return h.hexdigest()
