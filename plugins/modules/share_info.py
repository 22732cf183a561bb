#!/usr/bin/python
# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: share_info
short_description: Report the virtio-fs shares of libvirt domains and what is wrong with them
version_added: 0.1.0
description:
  - Reads, for one domain or for all domains of a libvirt connection, the virtio-fs shares of the persistent
    definition (tag, source, binary and options), whether shared memory is in place and whether the domain runs.
  - For running domains it also reports whether each share is attached and the virtiofsd process libvirt started
    for it (from libvirt's pid file under C(/run/libvirt/qemu), or from the process table), with the daemon's log
    file C(/var/log/libvirt/qemu/DOMAIN-ALIAS-virtiofsd.log).
  - Lists problems, for fleet audits across hosts, see RV(domains[].problems).
  - Never changes anything.
author:
  - virtiofs.libvirt contributors (@virtiofs-libvirt)
requirements:
  - lxml and libvirt-python on the managed host
  - libvirt >= 6.2.0
seealso:
  - module: virtiofs.libvirt.share
extends_documentation_fragment:
  - virtiofs.libvirt._attributes
  - virtiofs.libvirt._attributes.INFO_MODULE
  - virtiofs.libvirt._attributes.IDEMPOTENT_NOT_MODIFY_STATE
options:
  domain:
    description:
      - Name or UUID of the domain to report. When not set, every domain of the connection is reported.
    type: str
    aliases: [name]
  uri:
    description:
      - libvirt connection URI.
    type: str
    default: qemu:///system
  probe_binaries:
    description:
      - Run C(BINARY --version) on the daemons the shares use (and the one libvirt would pick from the vhost-user
        descriptors) to tell the Rust virtiofsd from the legacy C daemon.
    type: bool
    default: true
"""

EXAMPLES = r"""
---
- name: Report the shares of one guest
  virtiofs.libvirt.share_info:
    domain: web01
  register: info

- name: Fail when a guest has a problem
  ansible.builtin.assert:
    that: info.domains[0].problems | length == 0
    fail_msg: "{{ info.domains[0].problems | map(attribute='msg') | list }}"

- name: Audit every domain of every hypervisor
  virtiofs.libvirt.share_info:
  register: audit

- name: Show the problems of the fleet
  ansible.builtin.debug:
    msg: "{{ audit.domains | selectattr('problems') | items2dict(key_name='name', value_name='problems') }}"
"""

RETURN = r"""
libvirt_version:
  description: Version of the host's libvirt.
  returned: always
  type: str
  sample: 9.0.0
vhost_user_daemon:
  description:
    - The daemon libvirt runs for shares without C(<binary path>), from the first vhost-user descriptor of type
      C(fs) (V(null) when there is none).
  returned: always
  type: dict
  sample:
    descriptor: /usr/share/qemu/vhost-user/50-qemu-virtiofsd.json
    binary: /usr/lib/qemu/virtiofsd
    description: QEMU virtiofsd vhost-user-fs
    implementation: c
    version: 7.2.22
domains:
  description: One entry per reported domain.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: web01
    uuid:
      description: Domain UUID.
      type: str
    active:
      description: Whether the domain runs.
      type: bool
    persistent:
      description: Whether the domain has a persistent definition.
      type: bool
    shared_memory:
      description: Whether the definition has the shared memory virtio-fs needs.
      type: bool
    memory_backing:
      description: Shared memory summary of the definition (source, access, hugepages, NUMA cells).
      type: dict
    shares:
      description:
        - The virtio-fs shares of the persistent definition, with the keys of the share module's RV(virtiofs.libvirt.share#module:shares).
        - For running domains also C(attached) (the share is in the running configuration), C(live_alias) and
          C(virtiofsd) (C(running), C(pid), C(cmdline), C(exe), C(children), C(pid_file), C(log_path), C(log_exists)).
      type: list
      elements: dict
      sample:
        - tag: projects
          source: /srv/projects
          binary_path: /opt/virtiofsd-rust/virtiofsd.sh
          cache: always
          readonly: false
          attached: true
          live_alias: fs0
          virtiofsd:
            running: true
            pid: 4242
            cmdline: [/opt/virtiofsd-rust/virtiofsd, --fd=35, -o, source=/srv/projects]
            log_path: /var/log/libvirt/qemu/web01-fs0-virtiofsd.log
    restart_required:
      description:
        - Whether the running domain differs from its persistent definition in its virtio-fs shares or shared memory,
          so that it needs a full stop and start (see RV(domains[].restart_reasons)).
        - Always V(false) for domains that are not running.
      type: bool
      sample: true
    restart_reasons:
      description:
        - Why RV(domains[].restart_required) is V(true), one line per difference between the definition and the running
          domain; a share defined but not attached, a share attached but no longer defined, a share running with other
          options than defined, shared memory in the definition but not in the running domain.
      type: list
      elements: str
      sample: ["share 'data' is defined but not attached to the running domain"]
    problems:
      description:
        - What is wrong, one dict per problem with C(code), C(share) (the tag or V(null)) and C(msg).
        - "Codes: C(no_shared_memory), C(no_rust_daemon) (no C(<binary path>) and the daemon libvirt would pick is not
          the Rust virtiofsd), C(binary_not_executable), C(legacy_c_daemon) (C(<binary path>) is QEMU's legacy C
          daemon; only with O(probe_binaries=true)), C(binary_untrusted) (the binary, or a directory on the way
          to it, can be changed by a user other than root; it is not run), C(lock_present), C(source_missing), C(not_attached)
          (running domain without the share), C(daemon_not_running)."
      type: list
      elements: dict
      sample:
        - code: lock_present
          share: data
          msg: "share 'data' has <lock>: the Rust virtiofsd rejects locking options"
"""

import os
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtiofs.libvirt.plugins.module_utils._audit import restart_reasons
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    DomainXML,
    DomainXMLError,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (
    Connection,
    LibvirtAdapterError,
    vhost_user_fs_descriptor,
    virtiofsd_process,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import problem as path_problem
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import (
    MissingLibrary,
    failure_details,
    require,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    VirtiofsdError,
    probe_version,
)


class ShareInfo:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
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
            elif self.module.params["probe_binaries"]:
                try:
                    ver = probe_version(path, self._run)
                    info["implementation"] = ver.implementation
                    info["version"] = ver.version_string
                except VirtiofsdError as exc:
                    info["error"] = str(exc)
            self._probes[path] = info
        return self._probes[path]

    def _run(self, argv: t.List[str]) -> t.Tuple[int, str, str]:
        return self.module.run_command(argv, check_rc=False)

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
                    proc = virtiofsd_process(dom.name, dom.id, alias, share["source"], uri=self.module.params["uri"])
                    share["virtiofsd"] = proc
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
        with Connection(self.module.params["uri"]) as conn:
            version = conn.version()
            if self.module.params["domain"]:
                doms = [conn.lookup(self.module.params["domain"])]
            else:
                doms = conn.domains()
            daemon = self.vhost_user_daemon()
            reports = []
            for dom in sorted(doms, key=lambda d: d.name):
                try:
                    reports.append(self.domain_report(dom, daemon))
                except LibvirtAdapterError:
                    if self.module.params["domain"]:
                        raise
                    # a domain undefined while listing: skip it in fleet mode
            return {
                "changed": False,
                "libvirt_version": format_version(version),
                "vhost_user_daemon": daemon,
                "domains": reports,
            }


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type="str", aliases=["name"]),
            uri=dict(type="str", default="qemu:///system"),
            probe_binaries=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        result = ShareInfo(module).run()
    except (MissingLibrary, DomainXMLError, LibvirtAdapterError) as exc:
        module.fail_json(msg=str(exc), **failure_details(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
