# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: other collections must not use it.
# Generated from plugins/module_utils/_share_options.py (the share option table); the unit test
# tests/unit/plugins/doc_fragments/test_share.py fails when the two disagree and prints the text to paste.

from __future__ import annotations


class ModuleDocFragment:

    # The options of one share (everything but tag and state), as the module's top-level options.
    DOCUMENTATION = r"""
options:
  source:
    description:
    - Absolute path of the host directory to share (C(<source dir>)). Required with O(state=present).
    - It must exist unless O(create_source=true).
    - 'Written in normal form: repeated slashes, C(.) components and a trailing slash are dropped, so V(/srv/x/)
      and V(/srv/x) are the same share (a definition that already says V(/srv/x/) is left as it is). A C(..) component
      is refused, because its meaning depends on symbolic links on the way.'
    - V(/) (or a path that resolves to it) is refused, and so is a symbolic link on the way that a user other than
      root can change; a safe symbolic link on the way and a parent directory other users can change are warnings
      (see the notes).
    type: path
  binary_path:
    description:
    - Absolute path of the daemon (or wrapper script) libvirt runs for this share (C(<binary path>)); must be executable
      on the host.
    - When not set libvirt picks a daemon from the vhost-user descriptors in C(/etc/qemu/vhost-user) and C(/usr/share/qemu/vhost-user);
      on Debian 12 that is the legacy C daemon of QEMU.
    type: path
  readonly:
    description:
    - Export the directory read-only (C(<readonly/>)). Needs libvirt >= 11.0.0 and virtiofsd >= 1.13.0.
    - When not set or V(false) the share is read-write.
    type: bool
  cache:
    description:
    - Daemon cache mode (C(<cache mode>)); libvirt knows only these two values. When not set the daemon default
      (C(auto)) applies.
    type: str
    choices:
    - none
    - always
  sandbox:
    description:
    - Daemon sandbox mode (C(<sandbox mode>)). Needs libvirt >= 7.2.0.
    type: str
    choices:
    - namespace
    - chroot
  xattr:
    description:
    - Extended attribute support (C(<binary xattr>)).
    type: bool
  thread_pool_size:
    description:
    - Size of the daemon's thread pool (C(<thread_pool size>)), V(0) disables the pool. Needs libvirt >= 8.5.0.
    type: int
  openfiles:
    description:
    - Maximum number of open files of the daemon (C(<openfiles max>)). Needs libvirt >= 10.6.0.
    type: int
  queue_size:
    description:
    - 'Virtqueue size (C(<driver queue>)), for example V(1024): a power of two up to V(1024) (QEMU''s vhost-user-fs
      device refuses other sizes); other values are refused before anything is changed.'
    type: int
  idmap:
    description:
    - User and group id mapping (C(<idmap>)). Needs libvirt >= 10.0.0.
    type: dict
    suboptions:
      uid:
        description: User id ranges.
        type: list
        elements: dict
        suboptions:
          start:
            description: First id in the guest.
            type: int
            required: true
          target:
            description: First id on the host.
            type: int
            required: true
          count:
            description: Number of ids.
            type: int
            required: true
      gid:
        description: Group id ranges.
        type: list
        elements: dict
        suboptions:
          start:
            description: First id in the guest.
            type: int
            required: true
          target:
            description: First id on the host.
            type: int
            required: true
          count:
            description: Number of ids.
            type: int
            required: true
  ats:
    description:
    - Address translation services of the virtio device (C(<driver ats>)).
    type: bool
  iommu:
    description:
    - Use the platform IOMMU for the virtio device (C(<driver iommu>)).
    type: bool
  packed:
    description:
    - Packed virtqueues (C(<driver packed>)). Needs libvirt >= 6.3.0.
    type: bool
  create_source:
    description:
    - Create missing O(source) directories (with parents) instead of failing; O(owner), O(group) and O(mode) apply
      to the source directory itself. Entries of O(shares) can set their own C(create_source), C(owner), C(group)
      and C(mode).
    - An unknown O(owner) or O(group) or a malformed O(mode) is an error before anything is created (also in check
      mode). Directories are created just before the definition is written; when the run fails before the definition
      is written they are removed again (as long as they are still empty). Check mode reports them in RV(actions).
    type: bool
    default: false
  owner:
    description:
    - Owner of source directories created by O(create_source=true).
    type: str
  group:
    description:
    - Group of source directories created by O(create_source=true).
    type: str
  mode:
    description:
    - 'Mode of source directories created by O(create_source=true), as in M(ansible.builtin.file): a quoted octal
      string (V(''0755''), V(''2775'')) or a symbolic mode (V(''u=rwx,g=rx,o='')) is recommended; an integer is
      taken as the mode''s number (YAML V(0755) is 493).'
    - 'Refused before anything is created: an unquoted three-digit decimal above 0o777 such as V(755) (the number
      755 is octal 1363; quote it), an integer outside 0 to 0o7777, and the setuid bit (0o4000, meaningless on a
      directory; setgid and sticky are fine).'
    type: raw
"""
