# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for _download: https-only URLs, redirects, a fake ``fetch`` server."""

from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _download as D
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError
from install_world import Server, sha


# ------------------------------------------------------------------------------- downloads

@pytest.mark.parametrize("url,allow,ok", [
    ("https://x/y.zip", False, True),
    ("http://127.0.0.1:8000/y.zip", False, False),
    ("http://127.0.0.1:8000/y.zip", True, True),
    ("ftp://x/y.zip", True, False),
    ("file:///tmp/y.zip", True, False),
    ("/tmp/y.zip", True, False),
])
def test_check_url(url, allow, ok):
    if ok:
        D.check_url(url, allow)
    else:
        with pytest.raises(InstallError):
            D.check_url(url, allow)


def test_check_url_http_message_names_the_fix():
    with pytest.raises(InstallError, match="allow_http=true"):
        D.check_url("http://127.0.0.1/x.zip", False)
    with pytest.raises(InstallError) as err:
        D.check_url("ftp://127.0.0.1/x.zip", True)
    assert "must start with https:// (or http:// with allow_http=true)" in str(err.value)


def test_download(tmp_path):
    srv = Server()
    srv.add("https://a/x.zip", b"data")
    srv.add("https://a/404.zip", b"", status=404)
    srv.add("https://a/redir.zip", b"data", final_url="http://a/x.zip")
    dest = tmp_path / "d"
    assert D.download(srv.fetch, "https://a/x.zip", str(dest)) == sha(b"data")
    assert dest.read_bytes() == b"data"
    with pytest.raises(InstallError, match="failed: HTTP status 404"):
        D.download(srv.fetch, "https://a/404.zip", str(dest))
    with pytest.raises(InstallError, match="Connection refused"):
        D.download(srv.fetch, "https://a/none.zip", str(dest))
    with pytest.raises(InstallError, match="was redirected to http://a/x.zip"):
        D.download(srv.fetch, "https://a/redir.zip", str(dest))
    with pytest.raises(InstallError, match="plain http"):
        D.download(srv.fetch, "http://a/x.zip", str(dest))
    assert srv.requests == ["https://a/x.zip", "https://a/404.zip", "https://a/none.zip", "https://a/redir.zip"]
