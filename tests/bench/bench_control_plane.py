# SPDX-License-Identifier: GPL-3.0-or-later
"""Control-plane benchmark: the host role's share step against the usual hand-written workflow.

A script, not a test (the suite never runs it). Needs root and the lab (tests/lab/lab up); run
it with the dev venv's Python, which has ansible, libvirt-python, lxml and matplotlib:

    ~/.cache/virtiofs-libvirt/venv/bin/python tests/bench/bench_control_plane.py \
        [--sizes 10 50 200] [--role-only-sizes 1000] [--site --baseline REV]

For each N it defines N domains on the lab's libvirtd (minimal q35 XML built with lxml, type
qemu, never started) twice over, one set per approach, and gives each domain one share:

* role: ``virtiofs.libvirt.host`` with ``virtiofs_host_shares`` (one ``virtiofs.libvirt.share``
  run for all domains, its ``domains`` form); timed: the role's share step (its tasks in
  shares.yml), from the JSON callback's task timestamps;
* workflow: what people write today, per domain ``community.libvirt.virt`` get_xml, then
  ``community.general.xml`` (count the share, add the <filesystem>, set memoryBacking source and
  access), then ``community.libvirt.virt`` define; timed: the whole play.

Both are timed on the first apply and on re-runs with nothing to change (``--repeat``, the best
is kept; the two approaches alternate, so load on the machine hits both). It prints per-domain
cost and the workflow/role ratio, fits time = a + b*N to show how cost grows, checks that the
workflow's result is what the role would have written (role in check mode: no change), writes
a PNG (time against N) and a JSON file, and undefines every domain it defined (and removes its
daemon, wrapper and source directory). ``--role-only-sizes`` runs the role alone for larger N
(the workflow would take half an hour at N = 1000).

``--site`` also times the whole ``virtiofs.libvirt.site`` playbook on the lab (one hypervisor
and its guest, ``docs/examples/lab-vars.yml``), no-change runs, for this checkout and for
``--baseline`` (a git revision, checked out beside this one in a temporary worktree), the two
alternating, and prints both task profiles (per task: seconds, hosts, from the JSON callback).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libvirt
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("VIRTIOFS_LAB_STATE", "/var/lib/virtiofs-libvirt-lab"))
URI = "qemu:///system"
PREFIX = "bench-cp-"
INSTALL_DIR = "/opt/bench-virtiofsd"
SOURCE = "/srv/bench-cp"
TAG = "bench"
SHARE_TASK = "Apply the shares of every domain in one module run"
ROLE_STEP = ("Work out which daemons and wrappers are new or changed in this run", SHARE_TASK,
             "Remember what changed and which domains need a restart")

WORKFLOW_TASKS = """---
- name: Read the domain XML
  community.libvirt.virt:
    command: get_xml
    name: "{{ bench_domain }}"
  register: bench_xml

- name: Count the share
  community.general.xml:
    xmlstring: "{{ bench_xml.get_xml }}"
    xpath: /domain/devices/filesystem/target[@dir='bench']
    count: true
  register: bench_count

- name: Add the filesystem
  community.general.xml:
    xmlstring: "{{ bench_xml.get_xml }}"
    xpath: /domain/devices
    input_type: xml
    add_children:
      - >-
        <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>
        <binary path='{{ bench_binary }}'/><source dir='{{ bench_source }}'/>
        <target dir='bench'/></filesystem>
  register: bench_fs
  when: bench_count.count == 0

- name: Shared memory source
  community.general.xml:
    xmlstring: "{{ bench_fs.xmlstring | default(bench_xml.get_xml) }}"
    xpath: /domain/memoryBacking/source
    attribute: type
    value: memfd
  register: bench_src

- name: Shared memory access
  community.general.xml:
    xmlstring: "{{ bench_src.xmlstring }}"
    xpath: /domain/memoryBacking/access
    attribute: mode
    value: shared
  register: bench_acc

- name: Define the domain
  community.libvirt.virt:
    command: define
    # community.general.xml returns an XML declaration that the virt module's parser refuses
    xml: >-
      {{ bench_acc.xmlstring | regex_replace('^<[?]xml[^>]*[?]>', '') | trim }}
"""


def log(msg: str) -> None:
    print(f"[bench-cp] {msg}", file=sys.stderr, flush=True)


def lab_state() -> dict:
    try:
        return json.loads((STATE / "lab.json").read_text())
    except FileNotFoundError:
        sys.exit("the lab is not up (no lab.json): run tests/lab/lab up")


def domain_xml(name: str) -> str:
    dom = etree.Element("domain", type="qemu")
    etree.SubElement(dom, "name").text = name
    etree.SubElement(dom, "title").text = "virtiofs.libvirt control-plane benchmark"
    etree.SubElement(dom, "memory", unit="MiB").text = "128"
    os_el = etree.SubElement(dom, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    devices = etree.SubElement(dom, "devices")
    etree.SubElement(devices, "emulator").text = "/usr/bin/qemu-system-x86_64"
    etree.SubElement(devices, "controller", type="pci", model="pcie-root")
    return etree.tostring(dom, encoding="unicode")


def define(names: list[str]) -> None:
    conn = libvirt.open(URI)
    try:
        for name in names:
            conn.defineXML(domain_xml(name))
    finally:
        conn.close()


def undefine_all() -> int:
    conn = libvirt.open(URI)
    n = 0
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith(PREFIX):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
                n += 1
    finally:
        conn.close()
    return n


def ansible_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(Path.home() / ".cache/virtiofs-libvirt/collections"))
    env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False"})
    return env


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(playbook: Path, extra: dict, inventory: str, check: bool = False) -> tuple[dict, float]:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, str(playbook), "-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False)
    wall = time.monotonic() - t0
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = {}
    if proc.returncode != 0:
        raise SystemExit(f"{playbook.name} failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return data, wall


def tasks(data: dict):
    for play in data.get("plays", []):
        yield from play.get("tasks", [])


def span(data: dict, names=None) -> float:
    """Seconds from the first to the last of the matching tasks (all tasks when names is None)."""
    starts, ends = [], []
    for task in tasks(data):
        name = task["task"]["name"]
        if names is not None and not any(name.endswith(n) for n in names):
            continue
        dur = task["task"].get("duration", {})
        if "start" in dur and "end" in dur:
            starts.append(_ts(dur["start"]))
            ends.append(_ts(dur["end"]))
    if not starts:
        raise SystemExit(f"no timed tasks matched {names}")
    return max(ends) - min(starts)


def changed_results(data: dict, name: str) -> list[bool]:
    """Per domain whether the share module changed it (its ``domains`` result)."""
    for task in tasks(data):
        if task["task"]["name"].endswith(name):
            res = task["hosts"]["hypervisor"]
            if "domains" in res:
                return [d.get("changed", False) for d in res["domains"].values()]
            return [r.get("changed", False) for r in res.get("results", [res])]
    return []


def module_runs(data: dict, name: str) -> int:
    """How many module runs the task made (1 for the domains form, one per loop item otherwise)."""
    for task in tasks(data):
        if task["task"]["name"].endswith(name):
            res = task["hosts"]["hypervisor"]
            return len(res.get("results", [res]))
    return 0


def profile(data: dict) -> list[tuple[float, str, int]]:
    """(seconds, task name, hosts) per task, slowest first: what ansible.posix.profile_tasks shows."""
    rows = []
    for task in tasks(data):
        dur = task["task"].get("duration", {})
        if "start" in dur and "end" in dur:
            rows.append((_ts(dur["end"]) - _ts(dur["start"]), task["task"]["name"], len(task.get("hosts", {}))))
    return sorted(rows, reverse=True)


def counts(data: dict) -> dict:
    ran = skipped = 0
    for task in tasks(data):
        for res in task.get("hosts", {}).values():
            if res.get("skipped"):
                skipped += 1
            else:
                ran += 1
    return {"ran": ran, "skipped": skipped}


def site_benchmark(lab: dict, baseline: str, repeat: int) -> dict:
    """The whole site playbook, no-change runs, this checkout against ``baseline``."""
    inventory = lab["inventory"]
    base = Path(tempfile.mkdtemp(prefix="bench-site-"))
    checkout = base / "ansible_collections" / "virtiofs" / "libvirt"
    checkout.parent.mkdir(parents=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), baseline],
                   check=True, capture_output=True)
    rev = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"], capture_output=True,
                         text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True, check=True).stdout.strip()
    variants = {
        "before": (str(base), checkout, rev),
        "after": (os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(Path.home() / ".cache/virtiofs-libvirt/collections")),
                  ROOT, head),
    }
    out: dict = {}
    try:
        for name, (coll, tree, _rev) in variants.items():  # converge once with each
            log(f"site ({name}): converging run")
            site_run(tree, coll, inventory)
        for attempt in range(repeat):
            for name, (coll, tree, label) in variants.items():
                data, wall = site_run(tree, coll, inventory)
                prof = profile(data)
                changed = sum(1 for t in tasks(data) for r in t.get("hosts", {}).values() if r.get("changed"))
                log(f"site ({name}) no-change #{attempt + 1}: {wall:.1f}s wall, changed={changed}")
                if changed:
                    raise SystemExit(f"site ({name}) changed something on a no-change run: {changed} results")
                if name not in out or wall < out[name]["wall"]:
                    out[name] = {"wall": wall, "revision": label, "profile": prof[:15], **counts(data)}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)
    return out


def site_run(tree: Path, collections: str, inventory: str) -> tuple[dict, float]:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, "virtiofs.libvirt.site",
            "-e", f"@{tree / 'docs/examples/lab-vars.yml'}", "--limit", "hypervisor,guest",
            # a converging run may restart vfs-lab; under TCG and a loaded machine its ACPI shutdown
            # can outlast the lab's timeout, and the benchmark is about no-change runs
            "-e", "virtiofs_host_restart_force=true"]
    env = ansible_env()
    env["ANSIBLE_COLLECTIONS_PATH"] = collections
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tree, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"site failed (rc {proc.returncode}) in {tree}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):]), wall


def fit(ns: list[int], ts: list[float]) -> tuple[float, float, float]:
    """Least squares t = a + b*n; returns (a, b, r^2)."""
    k = len(ns)
    mx, my = sum(ns) / k, sum(ts) / k
    sxx = sum((x - mx) ** 2 for x in ns)
    b = sum((x - mx) * (y - my) for x, y in zip(ns, ts)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ts)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(ns, ts))
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 50, 200],
                    help="sizes for the role against the workflow (none: skip the share step, e.g. with --site)")
    ap.add_argument("--role-only-sizes", type=int, nargs="*", default=[1000],
                    help="sizes for the role alone (no workflow)")
    ap.add_argument("--site", action="store_true", help="also time the whole site playbook, before and after")
    ap.add_argument("--baseline", default="1163b9b",
                    help="git revision for the site 'before' run (default: main before the one-call change)")
    ap.add_argument("--repeat", type=int, default=2, help="no-change re-runs per N (the best is kept)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="directory for the PNG and JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (qemu:///system)")
    lab = lab_state()
    inventory = lab["inventory"]
    Path(SOURCE).mkdir(parents=True, exist_ok=True)
    removed = undefine_all()
    if removed:
        log(f"removed {removed} leftover {PREFIX}* domains")

    work = Path(tempfile.mkdtemp(prefix="bench-cp-"))
    (work / "workflow_domain.yml").write_text(WORKFLOW_TASKS)
    (work / "workflow.yml").write_text(f"""---
- name: Patch each domain the usual way
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: One domain
      ansible.builtin.include_tasks: {work / 'workflow_domain.yml'}
      loop: "{{{{ bench_domains }}}}"
      loop_control:
        loop_var: bench_domain
""")
    (work / "role.yml").write_text("""---
- name: The host role
  hosts: hypervisor
  gather_facts: false
  roles:
    - role: virtiofs.libvirt.host
""")
    role_vars = {
        "virtiofs_host_install_packages": False,
        "virtiofs_host_virtiofsd_method": "url",
        "virtiofs_host_virtiofsd_url": lab["artifact_url"],
        "virtiofs_host_virtiofsd_checksum": f"sha256:{lab['artifact_sha256']}",
        "virtiofs_host_virtiofsd_allow_http": True,
        "virtiofs_host_virtiofsd_install_dir": INSTALL_DIR,
    }
    wrapper = f"{INSTALL_DIR}/virtiofsd.sh"

    def role_shares(names):
        return {**role_vars, "virtiofs_host_shares": [{"domain": n, "tag": TAG, "source": SOURCE} for n in names]}

    # install the daemon and the wrapper once, outside the timings
    if args.sizes or args.role_only_sizes:
        run(work / "role.yml", role_vars, inventory)

    rows = []
    try:
        for n in args.sizes + args.role_only_sizes:
            role_only = n not in args.sizes
            role_names = [f"{PREFIX}r{n}-{i:04d}" for i in range(n)]
            wf_names = [] if role_only else [f"{PREFIX}w{n}-{i:04d}" for i in range(n)]
            log(f"N={n}: defining {len(role_names) + len(wf_names)} domains")
            define(role_names + wf_names)
            row = {"n": n, "role_only": role_only}
            for phase, times in (("first", 1), ("rerun", args.repeat)):
                for attempt in range(times):
                    data, wall = run(work / "role.yml", role_shares(role_names), inventory)
                    took = span(data, ROLE_STEP)
                    changed = changed_results(data, SHARE_TASK)
                    assert len(changed) == n, f"expected results for {n} domains, got {len(changed)}"
                    row["module_runs"] = module_runs(data, SHARE_TASK)
                    if attempt == 0 or took < row[f"role_{phase}"]:
                        row[f"role_{phase}"], row[f"role_{phase}_wall"] = took, wall
                    row[f"role_{phase}_changed"] = max(row.get(f"role_{phase}_changed", 0), sum(changed))
                    if role_only:
                        log(f"N={n} {phase} #{attempt + 1}: role share step {row[f'role_{phase}']:.2f}s (best so far)")
                        continue
                    data, wall = run(work / "workflow.yml", {"bench_domains": wf_names, "bench_binary": wrapper,
                                                             "bench_source": SOURCE}, inventory)
                    took = span(data)
                    if attempt == 0 or took < row[f"workflow_{phase}"]:
                        row[f"workflow_{phase}"], row[f"workflow_{phase}_wall"] = took, wall
                    log(f"N={n} {phase} #{attempt + 1}: role share step {row[f'role_{phase}']:.1f}s, "
                        f"workflow {row[f'workflow_{phase}']:.1f}s (best so far)")
            if not role_only:
                # the workflow wrote what the role would have: the role (check mode) sees nothing to do
                sample = wf_names[: min(n, 10)]
                data = run(work / "role.yml", role_shares(sample), inventory, check=True)[0]
                row["equivalent"] = not any(changed_results(data, SHARE_TASK))
            rows.append(row)
            conn = libvirt.open(URI)
            try:
                for name in role_names + wf_names:
                    conn.lookupByName(name).undefine()
            finally:
                conn.close()
    finally:
        undefine_all()
        subprocess.run(["rm", "-rf", SOURCE, INSTALL_DIR, str(work)], check=False)

    site = site_benchmark(lab, args.baseline, args.repeat) if args.site else None
    args.out.mkdir(parents=True, exist_ok=True)
    if rows:
        report_share_step(rows, args, lab)
    if site:
        report_site(site, args)
    return 0


def report_share_step(rows: list, args, lab: dict) -> None:
    print()
    print("Control plane: applying one virtio-fs share to each of N defined (not running) domains,")
    print(f"first apply once, no-change re-run best of {args.repeat};")
    print(f"libvirt {libvirt.getVersion() // 1000000}.{libvirt.getVersion() // 1000 % 1000}.{libvirt.getVersion() % 1000}, "
          f"lab {lab['uri']}; times in seconds (per domain in ms).")
    print()
    hdr = f"{'N':>5} | {'role first':>16} | {'workflow first':>16} | {'ratio':>6} | {'role re-run':>16} | {'workflow re-run':>16} | {'ratio':>6} | eq"
    print(hdr)
    print("-" * len(hdr))
    both = [r for r in rows if not r["role_only"]]
    for r in rows:
        def cell(key):
            return f"{r[key]:7.2f} ({1000 * r[key] / r['n']:5.1f})" if key in r else f"{'-':>16}"

        def ratio(phase):
            return f"{r['workflow_' + phase] / r['role_' + phase]:5.1f}x" if not r["role_only"] else f"{'-':>6}"
        eq = ("yes" if r["equivalent"] else "NO") if not r["role_only"] else "-"
        print(f"{r['n']:>5} | {cell('role_first'):>16} | {cell('workflow_first'):>16} | {ratio('first')} | "
              f"{cell('role_rerun'):>16} | {cell('workflow_rerun'):>16} | {ratio('rerun')} | {eq}")
    print()
    print(f"share-module runs per role run: {sorted({r['module_runs'] for r in rows})}")
    fits = {}
    for key in ("role_first", "role_rerun", "workflow_first", "workflow_rerun"):
        sample = rows if key.startswith("role") else both
        if len(sample) >= 2:
            a, b, r2 = fit([r["n"] for r in sample], [r[key] for r in sample])
            fits[key] = (a, b, r2)
            print(f"fit {key:15s}: t = {a:6.2f} s + {1000 * b:7.2f} ms * N   (r^2 = {r2:.4f}, N = "
                  f"{', '.join(str(r['n']) for r in sample)})")
    print(f"role re-runs changed nothing: {all(r['role_rerun_changed'] == 0 for r in rows)}; "
          f"role first runs changed every domain: {all(r['role_first_changed'] == r['n'] for r in rows)}")
    at50 = [r for r in both if r["n"] == 50]
    if at50:
        for phase, target in (("rerun", 30), ("first", 20)):
            ratio_50 = at50[0][f"workflow_{phase}"] / at50[0][f"role_{phase}"]
            print(f"target: {'no-change re-run' if phase == 'rerun' else 'first apply'} at N=50 at least {target}x "
                  f"faster than the workflow: {ratio_50:.1f}x -> {'met' if ratio_50 >= target else 'NOT met'}")
    if "role_rerun" in fits:
        per = 1000 * fits["role_rerun"][1]
        print(f"target: fitted per-domain cost of the role's re-run at most 10 ms: {per:.2f} ms -> "
              f"{'met' if per <= 10 else 'NOT met'}")
    (args.out / "bench-control-plane.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, both, args.out / "bench-control-plane.png")


def report_site(site: dict, args) -> None:
    if site:
        print()
        print("Whole virtiofs.libvirt.site, no-change run on the lab (hypervisor + guest), best of "
              f"{args.repeat}, before and after alternating:")
        for name in ("before", "after"):
            s_ = site[name]
            print(f"  {name:6s} {s_['revision']}: {s_['wall']:.1f} s wall, {s_['ran']} task results ran, "
                  f"{s_['skipped']} skipped")
        speedup = site["before"]["wall"] / site["after"]["wall"]
        print(f"target: site no-change run at least 3x faster: {speedup:.1f}x -> {'met' if speedup >= 3 else 'NOT met'}")
        for name in ("before", "after"):
            print(f"  task profile ({name}), slowest first:")
            for secs, task, hosts in site[name]["profile"]:
                print(f"    {secs:7.2f} s  {task}  ({hosts} host{'s' if hosts != 1 else ''})")
    (args.out / "bench-site.json").write_text(json.dumps(site, indent=2) + "\n")


def plot(rows: list, both: list, png: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (("workflow_first", "virt get_xml + xml + define, first apply", "o--"),
                              ("workflow_rerun", "virt get_xml + xml + define, no change", "s--"),
                              ("role_first", "virtiofs.libvirt.host share step, first apply", "o-"),
                              ("role_rerun", "virtiofs.libvirt.host share step, no change", "s-")):
        sample = rows if key.startswith("role") else both
        ax.plot([r["n"] for r in sample], [r[key] for r in sample], style, label=label)
    ax.set_xlabel("domains (one share each)")
    ax.set_ylabel("seconds")
    ax.set_title("Applying a virtio-fs share to N libvirt domains")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")


if __name__ == "__main__":
    sys.exit(main())
