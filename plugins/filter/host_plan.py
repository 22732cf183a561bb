# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: host_plan
short_description: The plan of the host role, computed from its variables
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the variables of the role R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) as a dict
    (the C(virtiofs_host_*) names as keys; missing ones take the role's defaults) and returns what the role does with
    them, so that its task files only read fields of the plan.
  - Collects every input problem (wrapper profiles, shares, the virtiofsd installation settings), each naming the entry
    it is in and the fix. The share entries get the checks of M(virtiofs.libvirt.share) (see the filter
    P(virtiofs.libvirt.share_error#filter)) and of P(virtiofs.libvirt.tag_error#filter).
  - Choices the role's argument spec declares for its top-level variables are not checked again. The values in
    C(virtiofs_host_shares) entries are typed and checked here with ansible-core's own validator (the share module's
    argument spec, the role's keys and the guest role's mount keys), since the role leaves that variable's type open.
  - The confinement decisions that need the host's facts come from P(virtiofs.libvirt.host_confinement#filter).
options:
  _input:
    description: The role variables, C(virtiofs_host_*) name to value.
    type: dict
    required: true
  role_share_keys:
    description:
      - Further keys of a C(virtiofs_host_shares) entry that the caller consumes itself and that are neither accepted
        nor handed to the share module otherwise. The host role's own keys (C(domain), C(wrapper), C(create_source),
        C(source_owner), C(source_group), C(source_mode)) and the guest playbook's C(mount*) keys are always
        consumed; every other key is a share module option or refused.
    type: list
    elements: str
    default: []
  variable_names:
    description:
      - The names of the variables the role sees (C(lookup('ansible.builtin.varnames', '^virtiofs_host_'))). With
        O(known_variables), every C(virtiofs_host_*) name that is neither a role variable nor a fact the role sets is
        refused, with the close match (a misspelt variable would otherwise be ignored).
    type: list
    elements: str
  known_variables:
    description: The role's variables (default the keys of O(role_spec)), for O(variable_names).
    type: list
    elements: str
  role_spec:
    description:
      - "The options of the role's argument spec (C(meta/argument_specs.yml)). The variables are typed with them
        (ansible-core's validator), since the role's argument check validates values but does not convert them, so
        C(-e virtiofs_host_install_packages=false) would stay a string."
    type: dict
"""

EXAMPLES = r"""
- name: Work out the plan
  ansible.builtin.set_fact:
    plan: >-
      {{ {'virtiofs_host_shares': virtiofs_host_shares, 'virtiofs_host_wrappers': virtiofs_host_wrappers}
         | virtiofs.libvirt.host_plan }}

- name: Fail on bad input
  ansible.builtin.fail:
    msg: "{{ plan.failure }}"
  when: plan.failure is not none
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    failure:
      description:
        - V(null) when the input is fine; otherwise the message the role fails with. A list (a heading and one line per
          problem) for bad wrapper profiles or shares, a string for bad installation settings.
      type: raw
    errors:
      description: The problems, in the lists C(variables), C(wrappers), C(shares) and C(install).
      type: dict
    wrappers:
      description: Every profile, normalised (C(name), C(path), C(state), C(options), C(extra_args), C(backup)).
      type: list
      elements: dict
    wrappers_present:
      description: The profiles with C(state=present).
      type: list
      elements: dict
    wrappers_absent:
      description: The profiles with C(state=absent) (all of them when O(virtiofs_host_virtiofsd_state=absent)).
      type: list
      elements: dict
    wrapper_paths:
      description: The paths of the present profiles.
      type: list
      elements: str
    wrapper_dirs:
      description: The directories of the present profiles, each once.
      type: list
      elements: str
    shares:
      description:
        - Every share, normalised (C(domain), C(tag), C(state), C(source), C(binary_path) and C(module), the entry
          for M(virtiofs.libvirt.share)).
      type: list
      elements: dict
    domains:
      description: The domains of the shares, each once.
      type: list
      elements: str
    share_domains:
      description: The O(virtiofs.libvirt.share#module:domains) option of the share module, sorted by domain.
      type: list
      elements: dict
    virtiofsd:
      description:
        - The daemon settings, C(state), C(method), C(install) (install the daemon), C(install_package) (from the
          distribution package), C(remove), C(daemon) (its path in the install directory) and C(install_dir_prefix).
      type: dict
    install_packages:
      description: Whether packages are installed.
      type: bool
    extra_packages:
      description: C(virtiofs_host_extra_packages) typed as a list.
      type: list
      elements: str
    apparmor_profiles:
      description: C(virtiofs_host_apparmor_profiles) typed as a list.
      type: list
      elements: str
    remove:
      description: Whether wrappers or the daemon are removed.
      type: bool
    apparmor:
      description: The AppArmor mode (V(auto), V(always), V(never)).
      type: str
    selinux:
      description: The SELinux mode (V(auto), V(never)).
      type: str
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import host_plan
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _host_plan(params, role_share_keys=(), variable_names=None, known_variables=None, role_spec=None):
    return host_plan(plain(params), role_share_keys=plain(list(role_share_keys)),
                     variable_names=None if variable_names is None else plain(list(variable_names)),
                     known_variables=None if known_variables is None else plain(list(known_variables)),
                     role_spec=None if role_spec is None else plain(role_spec))


class FilterModule:
    def filters(self):
        return {"host_plan": _host_plan}
