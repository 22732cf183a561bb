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
        - Also a share whose running virtiofsd is older than its program (read from C(/proc) in every run, until the
          domain has been shut down and started) - its executable was deleted or replaced by a new file since it
          started, or its C(<binary path>) wrapper was written or its mode changed after the daemon started. The
          line names the share, the path and the daemon's pid.
        - A mode or owner repair of the wrapper by M(virtiofs.libvirt.virtiofsd_wrapper) (same bytes) is not counted (the
          module records it); a C(chmod)/C(chown) by anything else is, because from the file alone it cannot be told
          from C(cp -p) or C(install -p) putting other bytes in place with an old mtime (the safe side).
      type: list
      elements: str
      sample: ["share 'data' is defined but not attached to the running domain",
               "share 'logs': /usr/local/libexec/virtiofsd-wrapper changed after its virtiofsd (pid 4242) started: the
               daemon keeps the old program and options until the domain is shut down and started"]
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXMLError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import LibvirtAdapterError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import (
    MissingLibrary,
    fail_arguments,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_info import ShareInfo


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
        result = ShareInfo(module.params, lambda argv: module.run_command(argv, check_rc=False)).run()
    except (MissingLibrary, DomainXMLError, LibvirtAdapterError) as exc:
        module.fail_json(**fail_arguments(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
