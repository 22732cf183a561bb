# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The logic of ``share_info``: what libvirt, the host and the running daemons say about the
virtio-fs shares of one domain or all of them, and the problems found.

Private module_utils: other collections must not import it.

No Ansible imports: the caller passes the options and a ``run_command`` callable.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.virtiofs.libvirt.plugins.module_utils._audit import restart_reasons
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXML
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (
    Connection,
    LibvirtAdapterError,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import problem as path_problem
from ansible_collections.virtiofs.libvirt.plugins.module_utils._proc import virtiofsd_process
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import require
from ansible_collections.virtiofs.libvirt.plugins.module_utils._restart import daemon_reasons
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version
from ansible_collections.virtiofs.libvirt.plugins.module_utils._vhost_user import vhost_user_fs_descriptor
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    VirtiofsdError,
    probe_version,
)


class ShareInfo:
    """The report of ``share_info``: read-only, libvirt plus the host's files and processes.

    ``params`` holds the options (``domain``, ``uri``, ``probe_binaries``);
    ``run_command(argv)`` runs a daemon binary and returns ``(rc, stdout, stderr)``.
    """

    def __init__(
        self, params: t.Mapping[str, t.Any], run_command: t.Callable[[t.List[str]], t.Tuple[int, str, str]]
    ) -> None:
        self.params = params
        self._run = run_command
        self._probes: t.Dict[str, t.Dict[str, t.Any]] = {}

    def probe(self, path: t.Optional[str]) -> t.Dict[str, t.Any]:
        """``{implementation, version, error}`` of a daemon binary (cached per path)."""
        if not path:
            return {"implementation": None, "version": None, "error": "no binary"}
        if path not in self._probes:
            info: t.Dict[str, t.Any] = {"implementation": None, "version": None, "error": None}
            untrusted = path_problem(path, "binary")
            info["untrusted"] = None if untrusted is None else str(untrusted)
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                info["error"] = "not an executable file"
            elif untrusted is not None:
                info["error"] = "untrusted"  # not run: another user may have replaced it
            elif self.params["probe_binaries"]:
                try:
                    ver = probe_version(path, self._run)
                    info["implementation"] = ver.implementation
                    info["version"] = ver.version_string
                except VirtiofsdError as exc:
                    info["error"] = str(exc)
            self._probes[path] = info
        return self._probes[path]

    def vhost_user_daemon(self) -> t.Optional[t.Dict[str, t.Any]]:
        desc = vhost_user_fs_descriptor()
        if desc is None:
            return None
        probe = self.probe(desc["binary"])
        return dict(desc, implementation=probe["implementation"], version=probe["version"])

    def domain_report(self, dom: t.Any, default_daemon: t.Optional[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
        doc = DomainXML.from_string(dom.inactive_xml(), what=f"definition of domain {dom.name!r}")
        active = dom.is_active()
        live = DomainXML.from_string(dom.live_xml(), what=f"live XML of domain {dom.name!r}") if active else None
        memory = doc.memory_status()
        restart = [] if live is None else restart_reasons(doc, live)
        problems: t.List[t.Dict[str, t.Any]] = []

        def problem(code: str, share: t.Optional[str], msg: str) -> None:
            problems.append({"code": code, "share": share, "msg": msg})

        shares = doc.shares()
        if shares and not memory["shared"]:
            problem("no_shared_memory", None,
                    f"domain {dom.name!r} has virtio-fs shares but no shared memory: add "
                    "<memoryBacking><source type='memfd'/><access mode='shared'/> (virtiofs.libvirt.share does it)")
        for share in shares:
            tag = share["tag"]
            if share["binary_path"]:
                probe = self.probe(share["binary_path"])
                share["binary_implementation"] = probe["implementation"]
                share["binary_version"] = probe["version"]
                if probe["error"] == "not an executable file":
                    problem("binary_not_executable", tag,
                            f"share {tag!r}: binary {share['binary_path']!r} is not an executable file on this host")
                elif probe["implementation"] == "c":
                    problem("legacy_c_daemon", tag,
                            f"share {tag!r}: binary {share['binary_path']!r} is QEMU's legacy C virtiofsd "
                            f"({probe['version'] or 'unknown version'}), not the Rust daemon: install the Rust virtiofsd "
                            "(virtiofs.libvirt.virtiofsd) and point binary_path at it or at a wrapper")
                if probe["untrusted"]:
                    problem("binary_untrusted", tag, f"share {tag!r}: {probe['untrusted']}")
            elif share["source_socket"] is None:
                if default_daemon is None or default_daemon.get("implementation") != "rust":
                    which = ("no vhost-user descriptor of type fs" if default_daemon is None
                             else f"the descriptor {default_daemon['descriptor']} points at {default_daemon['binary']} "
                                  f"({default_daemon.get('implementation') or 'unknown'} daemon)")
                    problem("no_rust_daemon", tag,
                            f"share {tag!r} has no <binary path> and no Rust virtiofsd is registered for libvirt "
                            f"({which}): set binary_path")
            if share["lock"] is not None:
                problem("lock_present", tag,
                        f"share {tag!r} has <lock>: the Rust virtiofsd rejects locking options; "
                        "re-apply the share with virtiofs.libvirt.share to drop it")
            if share["source"] and not os.path.isdir(share["source"]):
                problem("source_missing", tag, f"share {tag!r}: source directory {share['source']!r} does not exist")
            if live is not None:
                live_el = live.find_share(tag)
                share["attached"] = live_el is not None
                share["live_alias"] = None
                share["virtiofsd"] = None
                if live_el is None:
                    problem("not_attached", tag, f"share {tag!r} is defined but not attached to the running domain "
                                                 "(restart the domain, or attach it with live=true)")
                    continue
                alias_el = live_el.find("alias")
                alias = None if alias_el is None else alias_el.get("name")
                share["live_alias"] = alias
                if share["source_socket"] is None:
                    proc = virtiofsd_process(dom.name, dom.id, alias, share["source"], uri=self.params["uri"])
                    share["virtiofsd"] = proc
                    if proc["running"]:
                        restart += daemon_reasons(tag, proc["pid"], share["binary_path"])
                    if not proc["running"]:
                        problem("daemon_not_running", tag,
                                f"share {tag!r}: no virtiofsd process found for the running domain "
                                f"(see {proc['log_path']})")
        return {
            "name": dom.name,
            "uuid": dom.uuid,
            "active": active,
            "persistent": dom.is_persistent(),
            "shared_memory": memory["shared"],
            "memory_backing": memory,
            "shares": shares,
            "restart_required": bool(restart),
            "restart_reasons": restart,
            "problems": problems,
        }

    def run(self) -> t.Dict[str, t.Any]:
        require("lxml", "libvirt-python")
        with Connection(self.params["uri"]) as conn:
            version = conn.version()
            if self.params["domain"]:
                doms = [conn.lookup(self.params["domain"])]
            else:
                doms = conn.domains()
            daemon = self.vhost_user_daemon()
            reports = []
            for dom in sorted(doms, key=lambda d: d.name):
                try:
                    reports.append(self.domain_report(dom, daemon))
                except LibvirtAdapterError:
                    if self.params["domain"]:
                        raise
                    # a domain undefined while listing: skip it in fleet mode
            return {
                "changed": False,
                "libvirt_version": format_version(version),
                "vhost_user_daemon": daemon,
                "domains": reports,
            }
