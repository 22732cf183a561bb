# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet audit: share_info results of many hypervisors as one report.

Private module_utils: other collections must not import it.

Plain Python, no Ansible and no libvirt imports. Two parts:

* :func:`restart_reasons` compares a running domain's live XML with its persistent definition
  (the virtio-fs shares and shared memory); ``share_info`` reports the result per domain as
  ``restart_required``/``restart_reasons``.
* :func:`report_rows`, :func:`report_document`, :func:`render_markdown` and :func:`render_json`
  turn ``{inventory_host: share_info result}`` (what ``register`` stored, failed and unreachable
  results included) into one row per share, with a row for a domain without shares, for a
  hypervisor without domains and for a hypervisor whose result is missing or an error, so that
  nothing is left out silently. The filter ``virtiofs.libvirt.audit_report`` and the playbook
  ``virtiofs.libvirt.audit`` use them.
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import MANAGED_KEYS, DomainXML

REPORT_FORMAT = "virtiofs.libvirt.audit/1"

# share options compared between the definition and the running domain; <lock> is left out
# as the share module does (it drops <lock>, libvirt cannot start the Rust daemon with one)
LIVE_KEYS = tuple(k for k in MANAGED_KEYS if k != "lock")

# host_status values of a hypervisor that could not be read: (problem code, text in the domain column)
HOST_ERRORS = {
    "unreachable": ("host_unreachable", "(unreachable)"),
    "failed": ("share_info_failed", "(share_info failed)"),
    "no_result": ("no_result", "(no result)"),
}

MARKDOWN_COLUMNS = (
    "host", "domain", "tag", "source", "daemon", "daemon version", "attached", "restart pending", "problems",
)
HOST_COLUMNS = ("host", "status", "libvirt", "vhost-user daemon", "domains", "shares", "problems", "error")


# --------------------------------------------------------------------------------------------
# Restart pending: the running domain against its persistent definition
# --------------------------------------------------------------------------------------------


def restart_reasons(definition: "DomainXML", live: "DomainXML") -> t.List[str]:
    """Why a running domain has to be shut down and started to run its definition's virtio-fs setup.

    ``definition`` is the persistent definition (``XMLDesc(VIR_DOMAIN_XML_INACTIVE)``), ``live``
    the running configuration (``XMLDesc(0)``). Reported: a share that is defined but not
    attached, a share that is attached but no longer defined, a share whose options (the keys
    the share module manages, except ``<lock>``) differ, and shared memory in the definition
    that the running domain does not have. An empty list means nothing is pending.
    """
    reasons = []
    if definition.memory_status()["shared"] and not live.memory_status()["shared"]:
        reasons.append(
            "the definition has shared memory but the running domain has not: memoryBacking changes "
            "need a full stop and start"
        )
    defined = {share["tag"]: share for share in definition.shares()}
    running = {share["tag"]: share for share in live.shares()}
    for tag, want in defined.items():
        have = running.get(tag)
        if have is None:
            reasons.append(f"share {tag!r} is defined but not attached to the running domain")
            continue
        changed = [f"{key} {have.get(key)!r} -> {want.get(key)!r}" for key in LIVE_KEYS if want.get(key) != have.get(key)]
        if changed:
            reasons.append(
                f"share {tag!r} runs with other options than defined ({', '.join(changed)}): libvirt cannot "
                "change a virtio-fs device of a running domain"
            )
    for tag in running:
        if tag not in defined:
            reasons.append(f"share {tag!r} is attached to the running domain but no longer defined")
    return reasons


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def host_status(result: t.Any) -> t.Tuple[str, t.Optional[str]]:
    """``(status, error)`` of one registered share_info result: ``ok``, ``unreachable``, ``failed`` or ``no_result``."""
    if not isinstance(result, t.Mapping):
        return "no_result", "share_info did not run on this host (no registered result)"
    if result.get("unreachable"):
        return "unreachable", str(result.get("msg") or "the host was unreachable")
    if result.get("failed"):
        return "failed", str(result.get("msg") or "share_info failed without a message")
    if result.get("skipped"):
        return "no_result", "share_info was skipped on this host" + (
            f" ({result['skip_reason']})" if result.get("skip_reason") else ""
        )
    if not isinstance(result.get("domains"), list):
        return "failed", "the result has no list of domains: is it a virtiofs.libvirt.share_info result?"
    return "ok", None


def _row(host: str, status: str = "ok", **values: t.Any) -> t.Dict[str, t.Any]:
    row: t.Dict[str, t.Any] = {
        "host": host,
        "host_status": status,
        "domain": None,
        "domain_active": None,
        "tag": None,
        "source": None,
        "source_socket": None,
        "readonly": None,
        "binary_path": None,
        "daemon": None,
        "daemon_origin": None,
        "daemon_implementation": None,
        "daemon_version": None,
        "attached": None,
        "virtiofsd_running": None,
        "restart_required": None,
        "restart_reasons": [],
        "problems": [],
    }
    row.update(values)
    return row


def _daemon(share: t.Mapping[str, t.Any], default: t.Optional[t.Mapping[str, t.Any]]) -> t.Dict[str, t.Any]:
    """Which virtiofsd libvirt runs for ``share``: its ``<binary path>``, the vhost-user default, or none (socket)."""
    if share.get("binary_path"):
        return {
            "daemon": share["binary_path"],
            "daemon_origin": "binary_path",
            "daemon_implementation": share.get("binary_implementation"),
            "daemon_version": share.get("binary_version"),
        }
    if share.get("source_socket"):
        # the daemon was started outside libvirt and listens on the socket
        return {"daemon": None, "daemon_origin": "socket", "daemon_implementation": None, "daemon_version": None}
    if default:
        return {
            "daemon": default.get("binary"),
            "daemon_origin": "vhost-user",
            "daemon_implementation": default.get("implementation"),
            "daemon_version": default.get("version"),
        }
    return {"daemon": None, "daemon_origin": None, "daemon_implementation": None, "daemon_version": None}


def _problems(domain: t.Mapping[str, t.Any], tag: t.Optional[str]) -> t.List[t.Dict[str, t.Any]]:
    """The domain's problems that concern share ``tag`` or the whole domain (share ``None``)."""
    return [
        {"code": p.get("code"), "share": p.get("share"), "msg": p.get("msg")}
        for p in domain.get("problems") or []
        if p.get("share") is None or p.get("share") == tag
    ]


def _domain_rows(host: str, domain: t.Mapping[str, t.Any], default: t.Optional[t.Mapping[str, t.Any]]) -> t.List[t.Dict[str, t.Any]]:
    active = bool(domain.get("active"))
    common = {
        "domain": domain.get("name"),
        "domain_active": active,
        "restart_required": domain.get("restart_required"),
        "restart_reasons": list(domain.get("restart_reasons") or []),
    }
    shares = domain.get("shares") or []
    if not shares:
        return [_row(host, problems=_problems(domain, None), **common)]
    rows = []
    for share in shares:
        process = share.get("virtiofsd")
        rows.append(_row(
            host,
            tag=share.get("tag"),
            source=share.get("source"),
            source_socket=share.get("source_socket"),
            readonly=share.get("readonly"),
            binary_path=share.get("binary_path"),
            attached=share.get("attached") if active else None,
            virtiofsd_running=process.get("running") if isinstance(process, t.Mapping) else None,
            problems=_problems(domain, share.get("tag")),
            **_daemon(share, default),
            **common,
        ))
    return rows


def report_rows(results: t.Mapping[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    """One row per share of every domain of every host in ``{inventory_host: share_info result}``.

    A domain without shares and a host without domains get one row with ``tag``/``domain``
    ``None``; a host whose result is missing, failed or unreachable gets one row with its
    ``host_status`` and a problem (``host_unreachable``, ``share_info_failed``, ``no_result``)
    carrying the error. Hosts are sorted by name, domains and shares keep share_info's order.
    """
    if not isinstance(results, t.Mapping):
        raise TypeError(
            f"the audit needs a dict of inventory host name to share_info result, got {type(results).__name__}"
        )
    rows: t.List[t.Dict[str, t.Any]] = []
    for host in sorted(results, key=str):
        result = results[host]
        status, error = host_status(result)
        if status != "ok":
            rows.append(_row(str(host), status, problems=[{"code": HOST_ERRORS[status][0], "share": None, "msg": error}]))
            continue
        domains = result["domains"]
        if not domains:
            rows.append(_row(str(host)))
        for domain in domains:
            rows.extend(_domain_rows(str(host), domain, result.get("vhost_user_daemon")))
    return rows


def _host_summary(host: str, result: t.Any) -> t.Dict[str, t.Any]:
    status, error = host_status(result)
    summary: t.Dict[str, t.Any] = {
        "host": host,
        "status": status,
        "error": error,
        "libvirt_version": None,
        "vhost_user_daemon": None,
        "domains": 0,
        "shares": 0,
        "problems": 0,
    }
    if status == "ok":
        domains = result["domains"]
        summary.update(
            libvirt_version=result.get("libvirt_version"),
            vhost_user_daemon=result.get("vhost_user_daemon"),
            domains=len(domains),
            shares=sum(len(d.get("shares") or []) for d in domains),
            problems=sum(len(d.get("problems") or []) for d in domains),
        )
    return summary


def report_document(results: t.Mapping[str, t.Any], generated_at: str) -> t.Dict[str, t.Any]:
    """The whole report: ``format``, ``generated_at``, per-host ``hosts``, the ``rows`` and a ``summary``."""
    rows = report_rows(results)
    hosts = [_host_summary(str(host), results[host]) for host in sorted(results, key=str)]
    return {
        "format": REPORT_FORMAT,
        "generated_at": generated_at,
        "hosts": hosts,
        "rows": rows,
        "summary": {
            "hosts": len(hosts),
            "unreadable_hosts": [h["host"] for h in hosts if h["status"] != "ok"],
            "domains": sum(h["domains"] for h in hosts),
            "shares": sum(h["shares"] for h in hosts),
            "rows_with_problems": sum(1 for r in rows if r["problems"]),
            "restart_pending_domains": len({(r["host"], r["domain"]) for r in rows if r["restart_required"]}),
        },
    }


def render_json(document: t.Mapping[str, t.Any]) -> str:
    """The document as JSON text (indented, keys sorted, final newline)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

# '_' only starts or ends emphasis next to a non-alphanumeric character: 'source_missing' stays readable
_UNDERSCORE_RE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")


def md_cell(value: t.Any) -> str:
    """``value`` as the text of one Markdown table cell (GitHub-flavoured).

    ``None`` and empty text become ``-``. HTML is escaped (problem messages name XML elements
    such as ``<memoryBacking>``), so are ``|`` (the cell separator), backslashes and the
    characters that start emphasis, code or links; line breaks become ``<br>``.
    """
    if value is None:
        return "-"
    text = str(value).strip()
    if not text:
        return "-"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\\", "&#92;")
    for char in ("|", "*", "`", "[", "]"):
        text = text.replace(char, "\\" + char)
    text = _UNDERSCORE_RE.sub(r"\\_", text)
    return _NEWLINE_RE.sub("<br>", text)


def _md_row(cells: t.Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_table(columns: t.Sequence[str], rows: t.Iterable[t.Sequence[str]]) -> t.List[str]:
    return [_md_row(columns), _md_row(["---"] * len(columns))] + [_md_row(r) for r in rows]


def _yes_no(value: t.Optional[bool]) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"


def _daemon_cells(row: t.Mapping[str, t.Any]) -> t.Tuple[str, str]:
    origin = row["daemon_origin"]
    if origin == "socket":
        daemon = md_cell(f"external, socket {row['source_socket']}")
    elif origin == "vhost-user":
        daemon = md_cell(f"{row['daemon']} (vhost-user default)")
    else:
        daemon = md_cell(row["daemon"])
    version = " ".join(str(v) for v in (row["daemon_implementation"], row["daemon_version"]) if v)
    return daemon, md_cell(version)


def _problem_lines(problems: t.Iterable[t.Mapping[str, t.Any]]) -> str:
    return "<br>".join(f"`{p.get('code')}`: {md_cell(p.get('msg'))}" for p in problems) or "-"


def markdown_row(row: t.Mapping[str, t.Any]) -> t.List[str]:
    """The cells of :data:`MARKDOWN_COLUMNS` for one report row."""
    daemon, version = _daemon_cells(row)
    if not row["domain_active"] or row["restart_required"] is None:
        restart = "-"
    elif row["restart_required"]:
        restart = "<br>".join(["yes"] + [md_cell(r) for r in row["restart_reasons"]])
    else:
        restart = "no"
    if row["host_status"] != "ok":
        domain = md_cell(HOST_ERRORS[row["host_status"]][1])
    elif row["domain"] is None:
        domain = md_cell("(no domains)")
    else:
        domain = md_cell(row["domain"])
    tag = md_cell(row["tag"]) if row["tag"] is not None or row["domain"] is None else md_cell("(no shares)")
    source = md_cell(row["source"])
    if row["readonly"]:
        source += " (read-only)"
    return [
        md_cell(row["host"]),
        domain,
        tag,
        source,
        daemon,
        version,
        _yes_no(row["attached"]) if row["domain_active"] else "-",
        restart,
        _problem_lines(row["problems"]),
    ]


def _host_cells(host: t.Mapping[str, t.Any]) -> t.List[str]:
    daemon = host["vhost_user_daemon"]
    if daemon:
        version = " ".join(str(v) for v in (daemon.get("implementation"), daemon.get("version")) if v)
        daemon_text = md_cell(f"{daemon.get('binary')}" + (f" ({version})" if version else ""))
    else:
        daemon_text = "-" if host["status"] != "ok" else "none registered"
    ok = host["status"] == "ok"
    return [
        md_cell(host["host"]),
        md_cell(host["status"].replace("_", " ")),
        md_cell(host["libvirt_version"]),
        daemon_text,
        str(host["domains"]) if ok else "-",
        str(host["shares"]) if ok else "-",
        str(host["problems"]) if ok else "-",
        md_cell(host["error"]),
    ]


def render_markdown(document: t.Mapping[str, t.Any]) -> str:
    """The document as Markdown: a summary line, a table of the hypervisors and one of the shares."""
    summary = document["summary"]
    unreadable = summary["unreadable_hosts"]
    lines = [
        "# virtio-fs audit",
        "",
        f"Generated at {md_cell(document['generated_at'])}: {summary['hosts']} hypervisor(s)"
        + (f" ({len(unreadable)} could not be read: {md_cell(', '.join(unreadable))})" if unreadable else "")
        + f", {summary['domains']} domain(s), {summary['shares']} share(s), "
        f"{summary['rows_with_problems']} row(s) with problems, "
        f"{summary['restart_pending_domains']} domain(s) with a restart pending.",
        "",
        "## Hypervisors",
        "",
    ]
    lines += _md_table(HOST_COLUMNS, (_host_cells(h) for h in document["hosts"]))
    lines += ["", "## Shares", ""]
    lines += _md_table(MARKDOWN_COLUMNS, (markdown_row(r) for r in document["rows"]))
    return "\n".join(lines) + "\n"
