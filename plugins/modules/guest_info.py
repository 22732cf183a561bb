#!/usr/bin/python
# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_info
short_description: Report what a Linux guest offers for virtio-fs and how its mounts stand
version_added: 0.2.0
description:
  - Runs inside a guest. In one run it reads what the role virtiofs.libvirt.guest needs before it changes
    anything, instead of one task per file (each task is one module run, seconds on a slow guest),
    namely the kernel and service manager, whether C(/proc/filesystems) lists virtiofs, the tags the kernel offers
    (C(/sys/fs/virtiofs/*/tag), Linux >= 6.9), the entries of C(/etc/fstab) and every mount C(findmnt) lists.
  - With O(shares), it also joins each share with its fstab lines and with what is mounted on its path.
  - Never changes anything.
author:
  - virtiofs.libvirt contributors (@virtiofs-libvirt)
requirements:
  - Linux with util-linux C(findmnt) (any version with C(--json), util-linux >= 2.27)
seealso:
  - module: ansible.posix.mount
extends_documentation_fragment:
  - virtiofs.libvirt._attributes
  - virtiofs.libvirt._attributes.INFO_MODULE
  - virtiofs.libvirt._attributes.IDEMPOTENT_NOT_MODIFY_STATE
options:
  shares:
    description:
      - Shares to join with what the guest shows, as the role normalises them. Each needs C(path);
        C(tag), C(state), C(options) and C(automount) are used when present. Other keys are returned as given.
    type: list
    elements: dict
    default: []
  fstab:
    description:
      - The fstab file to read. A missing file reads as empty.
    type: path
    default: /etc/fstab
notes:
  - The service manager is detected by Ansible's own fact collector (the value of C(ansible_facts.service_mgr)).
  - Fails when findmnt cannot be run or prints no JSON, naming the command and its error.
"""

EXAMPLES = r"""
---
- name: Read what the guest offers
  virtiofs.libvirt.guest_info:
    shares:
      - {tag: data, path: /mnt/data, state: mounted, options: defaults, automount: false}
  register: guest

- name: Fail when the kernel cannot mount virtiofs
  ansible.builtin.assert:
    that: guest.virtiofs_registered
"""

RETURN = r"""
system:
  description: The kernel's name (C(platform.system()), as C(ansible_facts.system)).
  returned: always
  type: str
  sample: Linux
kernel:
  description: The kernel release (as C(ansible_facts.kernel)).
  returned: always
  type: str
  sample: 6.1.0-28-amd64
service_mgr:
  description: The service manager, as Ansible's C(ansible_facts.service_mgr) names it.
  returned: always
  type: str
  sample: systemd
virtiofs_registered:
  description: C(/proc/filesystems) lists virtiofs (built in, or module C(virtiofs) loaded).
  returned: always
  type: bool
tags:
  description:
    - The tags of the guest's virtio-fs devices, sorted, from C(/sys/fs/virtiofs/*/tag).
    - C(null) when the kernel does not list them (no C(/sys/fs/virtiofs), Linux < 6.9).
  returned: always
  type: list
  elements: str
  sample: [data]
fstab:
  description: The entries of the fstab file (comments and short lines left out); dump and passno default to C("0").
  returned: always
  type: list
  elements: dict
  sample: [{src: data, path: /mnt/data, fstype: virtiofs, opts: defaults, dump: "0", passno: "0", line: data /mnt/data virtiofs defaults 0 0}]
mounts:
  description: Every mount, as C(findmnt --json --list --output TARGET,SOURCE,FSTYPE,OPTIONS) lists it.
  returned: always
  type: list
  elements: dict
  sample: [{target: /mnt/data, source: data, fstype: virtiofs, options: rw,relatime}]
shares:
  description:
    - O(shares), each with C(fstab) (its fstab entries), C(fstab_current) (every fstab line for its path, at least one, is the line the role writes),
      C(at_path) (the mounts on its path), C(same) (virtiofs mounts of its tag there), C(other_tag),
      C(autofs) (systemd automounts, with systemd only), C(foreign) (other file systems) and C(stop_automount)
      (an automount sits there that the share's state does not keep).
  returned: always
  type: list
  elements: dict
"""

import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest import (
    FINDMNT_ARGV,
    GuestInfoError,
    guest_report,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "shares": {"type": "list", "elements": "dict", "default": []},
            "fstab": {"type": "path", "default": "/etc/fstab"},
        },
        supports_check_mode=True,
    )
    try:
        system = platform.system()
        service_mgr = ServiceMgrFactCollector().collect(
            module=module, collected_facts={"ansible_system": system}).get("service_mgr", "service")
        result = guest_report(
            module.params["shares"], module.params["fstab"], system, platform.release(), service_mgr,
            module.get_bin_path(FINDMNT_ARGV[0], required=False), lambda argv: module.run_command(argv, check_rc=False),
        )
    except (GuestInfoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
