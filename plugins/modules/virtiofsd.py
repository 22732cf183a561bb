#!/usr/bin/python
# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: virtiofsd
short_description: Install and verify the Rust virtiofsd
version_added: 0.1.0
description:
  - Installs the Rust C(virtiofsd) from an upstream-style archive (O(method=url)), builds it with
    cargo from a source tree, a source tarball or a crate (O(method=source)), or finds and verifies
    the distribution package's binary (O(method=package)).
  - Every binary is checked before it is used or put in place. C(--version) must report the Rust
    daemon (C(virtiofsd X.Y.Z)) and a version satisfying O(version). The module reports what the
    daemon can do (C(--print-capabilities), C(--help)).
  - Installation is atomic. The new binary is written to a temporary file in O(install_dir),
    verified, and then renamed over the old one. On any failure (download error, checksum mismatch,
    missing archive member, a binary that is not the Rust daemon or has the wrong version, a failed
    build) nothing changes and the previous binary keeps working.
  - A manifest (C(.virtiofsd.manifest.json) in O(install_dir)) records the version, the sha256 of
    the binary and the request it was installed from. A repeated run with the same request uses no
    network and no cargo and reports no change.
  - Reports legacy C daemons (QEMU 5.0 to 7.2) and the vhost-user descriptors in
    C(/usr/share/qemu/vhost-user) and C(/etc/qemu/vhost-user). Can register the installed daemon
    there (O(register_vhost_user)) and mask the C daemon's descriptor (O(mask_legacy)); this only
    matters for domains whose C(<binary>) element has no C(path).
  - The module does not install distribution packages. For O(method=package) install the package
    first (for example with M(ansible.builtin.package), name C(virtiofsd)); for O(method=source)
    install the build dependencies first (Debian/Ubuntu C(libseccomp-dev libcap-ng-dev cargo),
    Fedora/RHEL C(libseccomp-devel libcap-ng-devel cargo)).
author:
  - virtiofs.libvirt contributors (@virtiofs-libvirt)
extends_documentation_fragment:
  - virtiofs.libvirt._attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode downloads and builds nothing; it reports whether an installation would happen.
  diff_mode:
    support: full
    details:
      - The diff shows the installed path, version, sha256 and managed vhost-user descriptors.
  idempotent:
    support: full
    details:
      - The manifest makes a second run with the same request a no-op without network access.
options:
  state:
    description:
      - V(present) installs (or, for O(method=package), finds) and verifies the daemon.
      - V(absent) removes what this module installed in O(install_dir) (the binary and the
        manifest; O(install_dir) itself when this module created it and it is empty), and the
        vhost-user descriptor and masks this module wrote. Distribution packages are not removed.
    type: str
    choices: [present, absent]
    default: present
  method:
    description:
      - V(url) downloads O(url) (a zip or tar archive, or a bare binary) and installs O(member).
      - V(source) builds with cargo from O(source_dir), O(source_archive), or crate
        O(crate_version) in O(cargo_registry_dir) (or crates.io when no registry is given).
      - V(package) finds the binary of an installed distribution package (C(/usr/libexec/virtiofsd),
        C(/usr/lib/virtiofsd), C(/usr/lib64/virtiofsd), C(/usr/lib/qemu/virtiofsd), ...) and checks it;
        a binary that a user other than root can change (it or a directory on its path) is refused, naming the fix.
        Debian 12 has no Rust package; use V(url) or V(source) there.
      - Required when O(state=present).
    type: str
    choices: [package, url, source]
  version:
    description:
      - Version requirement on the daemon, exact (V(1.13.2)) or with an operator (V(>=1.10.0),
        V(<=), V(<), V(>), V(==)).
      - A shorter version compares only the parts it gives, V(1.13) accepts any 1.13.x and V(>1.13) starts at 1.14.0.
      - The installed or found binary's C(--version) must satisfy it; otherwise the module fails
        and nothing changes.
    type: str
  url:
    description:
      - Where to download virtiofsd from with O(method=url). Upstream publishes zip archives holding
        C(target/x86_64-unknown-linux-musl/release/virtiofsd).
      - Must be C(https://); C(http://) only with O(allow_http=true).
    type: str
  checksum:
    description:
      - Checksum of the file at O(url) (or of O(source_archive)), as C(sha256:<64 hex digits>).
      - Upstream publishes no checksum file; pin the sha256 of the archive you reviewed.
    type: str
  checksum_required:
    description:
      - Refuse O(method=url) without O(checksum). Set to V(false) to install an unverified download
        (a warning shows the sha256 that was installed).
    type: bool
    default: true
  member:
    description:
      - Path of the binary inside the archive at O(url). Ignored when O(url) is a bare binary.
    type: str
    default: target/x86_64-unknown-linux-musl/release/virtiofsd
  allow_http:
    description:
      - Accept a plain C(http://) O(url) (also for redirects). Off by default.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify the TLS certificate of O(url).
    type: bool
    default: true
  timeout:
    description:
      - Timeout in seconds for the download.
    type: int
    default: 60
  crate_version:
    description:
      - Version of the virtiofsd crate to build with O(method=source). The source (O(source_dir),
        O(source_archive)) must hold this version, and the built binary must report it.
      - Without O(source_dir) and O(source_archive), the crate C(virtiofsd-<crate_version>) is
        taken from O(cargo_registry_dir), or fetched by cargo from crates.io when that is not set.
    type: str
  source_dir:
    description:
      - Directory holding the virtiofsd crate (its C(Cargo.toml)). It is copied and not modified.
      - Changes inside the directory are not detected by the idempotence check; change the request
        (or O(state=absent) first) to rebuild.
    type: path
  source_archive:
    description:
      - Tarball (C(.tar.gz), C(.tar.xz)) of the virtiofsd crate, on the managed host.
      - Mutually exclusive with O(source_dir).
    type: path
  cargo_registry_dir:
    description:
      - Local crate directory used instead of crates.io, for offline builds (cargo source
        replacement with a C(directory) source and C(--offline)). Either a C(cargo vendor) directory
        or a tree of unpacked crates such as Debian's C(/usr/share/cargo/registry).
      - C(Cargo.lock) of the source is dropped so that cargo resolves against this directory.
    type: path
    aliases: [cargo_vendor_dir]
  cargo_path:
    description:
      - Path of the cargo executable. By default cargo is looked up in E(PATH) and C(~/.cargo/bin).
    type: path
  install_dir:
    description:
      - Directory for the binary and the manifest. Created root-owned with mode C(0755) when missing.
        Must not be writable by group or others.
    type: path
    default: /opt/virtiofsd-rust
  binary_name:
    description:
      - File name of the installed binary in O(install_dir).
    type: str
    default: virtiofsd
  register_vhost_user:
    description:
      - Write a vhost-user descriptor C(<vhost_user_priority>-virtiofsd-rust.json) for the daemon in
        O(vhost_user_dir), so that libvirt uses it for filesystems without C(<binary path=...>).
      - V(false) removes a descriptor this module wrote earlier for the same binary.
    type: bool
    default: false
  vhost_user_priority:
    description:
      - Two-digit number the descriptor file name starts with. libvirt takes the first C(fs)
        descriptor in file-name order; the default V(40) sorts before the C(50-*) files of
        distribution packages.
    type: int
    default: 40
  mask_legacy:
    description:
      - With O(register_vhost_user=true), mask every descriptor in C(/usr/share/qemu/vhost-user) that
        points at a legacy C daemon, with an empty file of the same name in O(vhost_user_dir).
      - Masks are recorded in the descriptor and removed with it.
    type: bool
    default: false
  vhost_user_dir:
    description:
      - Directory for the descriptor and the masks. libvirt reads C(/etc/qemu/vhost-user); change it
        only for tests or a QEMU built with another configuration directory.
    type: path
    default: /etc/qemu/vhost-user
  os_family:
    description:
      - The managed host's OS family as Ansible's facts name it (C(ansible_facts['os_family']), for example V(Debian)
        or V(RedHat)).
      - With O(method=package), when no Rust package binary is found, it and O(distribution_major_version) choose the
        advice in the error (Debian 12 and older have no Rust package); the module then fails asking for both when
        either is missing, so gather facts or pass them.
      - With O(method=source), it picks the build dependency packages named when some are missing (both families
        when not given).
    type: str
  distribution_major_version:
    description:
      - The managed host's distribution major version as Ansible's facts name it
        (C(ansible_facts['distribution_major_version']), for example V(12)). See O(os_family).
    type: str
notes:
  - Needs root (C(become=true)) to install; files are owned by root.
  - Check mode and repeated runs execute the installed binary (C(--version), C(--help),
    C(--print-capabilities)) to report facts; they do not download or build.
  - Prefer C(<binary path=...>) in the domain XML over vhost-user registration; libvirt 9.x takes the
    first C(fs) descriptor without checking it.
seealso:
  - module: ansible.builtin.package
  - name: virtiofsd upstream
    description: Source, releases and CI artifacts of the Rust virtiofsd.
    link: https://gitlab.com/virtio-fs/virtiofsd
"""

EXAMPLES = r"""
---
- name: Install virtiofsd 1.13.2 from an upstream release zip
  virtiofs.libvirt.virtiofsd:
    method: url
    url: https://gitlab.com/virtio-fs/virtiofsd/uploads/0123456789abcdef0123456789abcdef/virtiofsd-v1.13.2.zip
    checksum: sha256:0000000000000000000000000000000000000000000000000000000000000000
    version: 1.13.2
  become: true

- name: Build virtiofsd offline from a local crate directory
  virtiofs.libvirt.virtiofsd:
    method: source
    crate_version: 1.13.2
    cargo_registry_dir: /srv/cargo/registry
  become: true

- name: Use the distribution's package (Debian 13, Fedora, RHEL 9)
  block:
    - name: Install the package
      ansible.builtin.package:
        name: virtiofsd
    - name: Check it is recent enough and register it for libvirt
      virtiofs.libvirt.virtiofsd:
        method: package
        version: ">=1.11.1"
        register_vhost_user: true
        mask_legacy: true
        os_family: "{{ ansible_facts['os_family'] }}"
        distribution_major_version: "{{ ansible_facts['distribution_major_version'] }}"
      register: virtiofsd
  become: true

- name: Show the daemon's features
  ansible.builtin.debug:
    msg: "{{ virtiofsd.path }} {{ virtiofsd.version }} {{ virtiofsd.capabilities.features }}"

- name: Remove the daemon installed by this module
  virtiofs.libvirt.virtiofsd:
    state: absent
  become: true
"""

RETURN = r"""
binary_changed:
  description:
    - Whether the daemon binary was installed or replaced in this run (in check mode, whether it would be).
    - V(false) for O(method=package), for O(state=absent), and when only modes or vhost-user files changed.
  returned: always
  type: bool
  sample: true
path:
  description: Path of the daemon (installed, found, or that would be installed in check mode).
  returned: always
  type: str
  sample: /opt/virtiofsd-rust/virtiofsd
realpath:
  description:
    - RV(path) with every symbolic link resolved (of the directories and of the file); in check mode before a
      first installation, the path it would have.
    - AppArmor and SELinux mediate the executable by this path, not by RV(path); the host role
      R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) writes its rules for it.
  returned: always
  type: str
  sample: /srv/virtiofsd-rust/virtiofsd
version:
  description:
    - Version reported by the daemon's C(--version).
    - In check mode before a first installation, the requested exact version, or V(null).
  returned: always
  type: str
  sample: 1.13.2
implementation:
  description: V(rust) for the daemon handled by this module; V(null) when it is not installed (yet).
  returned: always
  type: str
  sample: rust
capabilities:
  description: Parsed C(--print-capabilities) JSON of the daemon; V(null) when not known.
  returned: always
  type: dict
  sample: {"type": "fs", "features": ["migrate-precopy", "separate-options"]}
supported_options:
  description: Long options listed by the daemon's C(--help).
  returned: always
  type: list
  elements: str
  sample: ["--allow-mmap", "--cache", "--shared-dir", "--socket-path"]
sha256:
  description: sha256 of the daemon binary; V(null) when not known.
  returned: always
  type: str
  sample: 5b1f0b3f0c1e9a0d2e5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978
method:
  description: The O(method) that was used.
  returned: always
  type: str
  sample: url
actions:
  description: What the module did (or would do in check mode), one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["install virtiofsd into /opt/virtiofsd-rust/virtiofsd from https://example.org/v.zip (no manifest)"]
vhost_user_descriptor:
  description: The descriptor this run manages, when O(register_vhost_user=true).
  returned: always
  type: str
  sample: /etc/qemu/vhost-user/40-virtiofsd-rust.json
masked:
  description: Names of legacy descriptors masked in O(vhost_user_dir) by this module.
  returned: always
  type: list
  elements: str
  sample: ["50-qemu-virtiofsd.json"]
legacy_daemons:
  description: Legacy C virtiofsd binaries found on the host, with the descriptors that point at them.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the binary.
      type: str
      sample: /usr/lib/qemu/virtiofsd
    realpath:
      description: The path with symlinks resolved.
      type: str
      sample: /usr/lib/qemu/virtiofsd
    version:
      description: QEMU version the daemon reports.
      type: str
      sample: 7.2.22
    version_raw:
      description: First line of its C(--version) output.
      type: str
      sample: virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)
    descriptors:
      description: vhost-user descriptor files whose C(binary) is this daemon.
      type: list
      elements: str
      sample: ["/usr/share/qemu/vhost-user/50-qemu-virtiofsd.json"]
vhost_user_descriptors:
  description:
    - Every file in C(/usr/share/qemu/vhost-user), C(/etc/qemu/vhost-user) and O(vhost_user_dir),
      after this run, with the daemon it points at.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: Path of the descriptor.
      type: str
    empty:
      description: Whether it is an empty (masking) file.
      type: bool
    type:
      description: Its C(type) (V(fs) for virtiofsd).
      type: str
    binary:
      description: The binary it points at.
      type: str
    implementation:
      description: V(rust), V(c) or V(null) (not runnable or not recognised).
      type: str
    version:
      description: Version of that binary.
      type: str
    managed:
      description: Whether this module wrote it.
      type: bool
    masked_by:
      description: Empty file of the same name in a later directory that masks it.
      type: str
    overridden_by:
      description: Non-empty file of the same name in a later directory that replaces it.
      type: str
    selected:
      description:
        - Whether libvirt would pick it (first active C(fs) descriptor in file-name order).
        - None is selected when an active descriptor cannot be read or parsed (see C(error)), because libvirt
          then fails the whole lookup instead of going on to the next file.
      type: bool
    error:
      description: Why it could not be read or parsed (as libvirt reads it) or its binary not run.
      type: str
  sample:
    - file: /usr/share/qemu/vhost-user/50-qemu-virtiofsd.json
      empty: false
      type: fs
      binary: /usr/lib/qemu/virtiofsd
      implementation: c
      version: 7.2.22
      managed: false
      masked_by: null
      overridden_by: null
      selected: true
      error: null
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import (
    DEFAULT_BINARY_NAME,
    DEFAULT_INSTALL_DIR,
    DEFAULT_MEMBER,
    METHODS,
    STATES,
    Host,
    InstallError,
    Installer,
    Request,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import fail_arguments
from ansible_collections.virtiofs.libvirt.plugins.module_utils._vhost_user import CONF_DIR, DEFAULT_VHOST_USER_PRIORITY


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=list(STATES), default="present"),
            method=dict(type="str", choices=list(METHODS)),
            version=dict(type="str"),
            url=dict(type="str"),
            checksum=dict(type="str"),
            checksum_required=dict(type="bool", default=True),
            member=dict(type="str", default=DEFAULT_MEMBER),
            allow_http=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=60),
            crate_version=dict(type="str"),
            source_dir=dict(type="path"),
            source_archive=dict(type="path"),
            cargo_registry_dir=dict(type="path", aliases=["cargo_vendor_dir"]),
            cargo_path=dict(type="path"),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            binary_name=dict(type="str", default=DEFAULT_BINARY_NAME),
            register_vhost_user=dict(type="bool", default=False),
            vhost_user_priority=dict(type="int", default=DEFAULT_VHOST_USER_PRIORITY),
            mask_legacy=dict(type="bool", default=False),
            vhost_user_dir=dict(type="path", default=CONF_DIR),
            os_family=dict(type="str"),
            distribution_major_version=dict(type="str"),
        ),
        required_if=[
            ("state", "present", ["method"]),
            ("method", "url", ["url"]),
        ],
        mutually_exclusive=[("source_dir", "source_archive")],
        supports_check_mode=True,
    )
    p = module.params
    request = Request(
        state=p["state"],
        method=p["method"],
        version=p["version"],
        url=p["url"],
        checksum=p["checksum"],
        checksum_required=p["checksum_required"],
        member=p["member"],
        allow_http=p["allow_http"],
        crate_version=p["crate_version"],
        source_dir=p["source_dir"],
        source_archive=p["source_archive"],
        cargo_registry_dir=p["cargo_registry_dir"],
        cargo_path=p["cargo_path"],
        install_dir=p["install_dir"],
        binary_name=p["binary_name"],
        register_vhost_user=p["register_vhost_user"],
        vhost_user_priority=p["vhost_user_priority"],
        vhost_user_dir=p["vhost_user_dir"],
        mask_legacy=p["mask_legacy"],
    )

    def set_attrs(path, mode):
        changed = module.set_owner_if_different(path, "root", False)
        changed = module.set_group_if_different(path, "root", changed)
        return module.set_mode_if_different(path, mode, changed)

    host = Host(
        run=module.run_command,
        fetch=lambda url: fetch_url(module, url, method="GET", timeout=p["timeout"]),
        move=module.atomic_move,
        set_attrs=set_attrs,
        get_bin_path=lambda name, opt_dirs: module.get_bin_path(name, required=False, opt_dirs=opt_dirs),
        warn=module.warn,
        tmpdir=module.tmpdir,
        check_mode=module.check_mode,
        os_family=p["os_family"],
        distribution_major_version=p["distribution_major_version"],
        euid=os.geteuid(),
    )
    try:
        result = Installer(request, host).run()
    except InstallError as exc:
        module.fail_json(method=p["method"], changed=False, **fail_arguments(exc))
    diff = result.pop("diff")
    if module._diff and result["changed"]:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
