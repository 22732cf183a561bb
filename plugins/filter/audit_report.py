# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: audit_report
short_description: Turn the share_info results of many hypervisors into one virtio-fs audit report
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes a dict of inventory host name to the registered result of M(virtiofs.libvirt.share_info) on that host (failed
    and unreachable results included, V(null) for a host without a result) and returns the fleet's virtio-fs report as
    rows, as the JSON document or as Markdown.
  - One row per share of every domain; a domain without shares, a host without domains and a host whose result is
    missing, failed or unreachable each get one row too, the last with the error as a problem (C(host_unreachable),
    C(share_info_failed), C(no_result)), so that nothing is left out silently.
  - "Row keys are C(host), C(host_status) (C(ok), C(unreachable), C(failed), C(no_result)), C(domain),
    C(domain_active), C(tag), C(source), C(source_socket), C(readonly), C(binary_path), C(daemon) (the binary libvirt
    runs: the C(<binary path>) or, without one, the vhost-user default), C(daemon_origin) (C(binary_path),
    C(vhost-user), C(socket) or V(null)), C(daemon_implementation) (C(rust) or C(c)), C(daemon_version), C(attached)
    (V(null) when the domain does not run), C(virtiofsd_running), C(restart_required), C(restart_reasons) and
    C(problems) (the share's and the domain's problems, each with C(code), C(share) and C(msg))."
  - The playbook C(virtiofs.libvirt.audit) writes the JSON and Markdown forms to files.
options:
  _input:
    description: Inventory host name to that host's registered M(virtiofs.libvirt.share_info) result.
    type: dict
    required: true
  format:
    description:
      - V(rows) returns the list of rows.
      - V(document) returns the report as a dict with C(format) (V(virtiofs.libvirt.audit/1)), C(generated_at),
        C(hosts) (per host C(status), C(error), C(libvirt_version), C(vhost_user_daemon) and counts of domains, shares
        and problems), C(rows) and C(summary) (C(unreadable_hosts) among others).
      - V(json) returns that document as JSON text (indented, keys sorted).
      - V(markdown) returns it as Markdown text (a summary line, a table of the hypervisors and a table of the shares
        with the columns host, domain, tag, source, daemon, daemon version, attached, restart pending and problems).
    type: str
    choices: [rows, document, json, markdown]
    default: rows
  generated_at:
    description:
      - The time stamp written into the document and the Markdown, as given.
      - Defaults to the current UTC time in ISO 8601 form (C(2026-01-31T12:00:00Z)).
    type: str
"""

EXAMPLES = r"""
- name: Read every hypervisor
  virtiofs.libvirt.share_info:
  register: info
  ignore_errors: true
  ignore_unreachable: true

- name: Show the shares with problems
  ansible.builtin.debug:
    msg: "{{ report | selectattr('problems') | map(attribute='tag') | list }}"
  vars:
    report: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'info'))) | virtiofs.libvirt.audit_report }}"
  run_once: true

- name: Write the report as Markdown
  ansible.builtin.copy:
    dest: /srv/reports/virtiofs-audit.md
    content: "{{ results | virtiofs.libvirt.audit_report(format='markdown') }}"
    mode: "0644"
  vars:
    results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'info'))) }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - With O(format=rows) the list of rows, with O(format=document) the report as a dict, with O(format=json) and
      O(format=markdown) text.
  type: raw
  sample:
    - host: hv01
      host_status: ok
      domain: web01
      domain_active: true
      tag: projects
      source: /srv/projects
      binary_path: /usr/libexec/virtiofsd
      daemon: /usr/libexec/virtiofsd
      daemon_origin: binary_path
      daemon_implementation: rust
      daemon_version: 1.13.2
      attached: true
      virtiofsd_running: true
      restart_required: false
      restart_reasons: []
      problems: []
"""

import datetime
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.virtiofs.libvirt.plugins.module_utils._audit import (
    render_json,
    render_markdown,
    report_document,
    report_rows,
)

FORMATS = ("rows", "document", "json", "markdown")


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _audit_report(results, format="rows", generated_at=None):  # pylint: disable=redefined-builtin
    if not isinstance(results, Mapping):
        raise AnsibleFilterError(
            f"audit_report needs a dict of inventory host name to share_info result, got {type(results).__name__}: "
            "build it with dict(hosts | zip(hosts | map('extract', hostvars, 'REGISTERED_VAR')))"
        )
    if format not in FORMATS:
        raise AnsibleFilterError(f"audit_report: format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "rows":
        return report_rows(results)
    document = report_document(results, str(generated_at) if generated_at else _utc_now())
    if format == "json":
        return render_json(document)
    if format == "markdown":
        return render_markdown(document)
    return document


class FilterModule:
    def filters(self):
        return {"audit_report": _audit_report}
