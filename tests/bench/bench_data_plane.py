# SPDX-License-Identifier: GPL-3.0-or-later
"""Data-plane benchmark: virtio-fs with the host role's wrapper profiles against virtiofsd's own
defaults, virtio-9p and the guest's own disk, in one lab guest, in the same run.

A script, not a test (the suite never runs it). Needs root and the lab (tests/lab/lab up); run
it with the dev venv's Python:

    ~/.cache/virtiofs-libvirt/venv/bin/python tests/bench/bench_data_plane.py [--repeat 2]

Setup: the host role (``virtiofs.libvirt.host``) installs virtiofsd from the lab's artifact
server into a private directory and renders one wrapper per profile: ``role-default`` uses the
role's ``virtiofs_host_wrapper_default_options`` (read from roles/host/defaults/main.yml), the
other candidates (``--profile NAME=JSON`` adds more) start from it. Then a lab guest is booted
(``labctl.clone_guest``, shared memory) with one virtio-fs device per profile, one whose
``<binary path>`` is the daemon itself (``virtiofsd-defaults``: the daemon's own defaults, what
libvirt runs without a wrapper), and a virtio-9p device (``driver type='path'``,
``accessmode='mapped'``), all exporting the same host directory (each run works in its own
subdirectory).

Workloads, inside the guest (Python 3), for each target and repetition:

* meta: create 5,000 files of 64 bytes, stat them, unlink them;
* untar: unpack a tar of the guest's /usr/lib/python3.11 (about 1,100 files, 27 MB), remove it;
* stream: write 256 MiB in 1 MiB blocks and fsync, drop the guest's caches, read it back.

Targets are interleaved within each repetition; the best time over the repetitions is kept.
The guest's disk target runs in /root on the guest's own (qcow2) disk. The script prints the
times, the ratios against 9p and against the guest disk, the running daemons' command lines
(proof that each profile's options were live), and writes a JSON file; it removes the guest
and everything it created.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("VIRTIOFS_LAB_STATE", "/var/lib/virtiofs-libvirt-lab"))
DOMAIN = "bench-dp"
PORT = 2270
INSTALL_DIR = "/opt/bench-dp-virtiofsd"
HOST_DIR = "/srv/bench-dp"
NINEP_OPTS = "trans=virtio,version=9p2000.L,msize=524288"

sys.path.insert(0, str(ROOT / "tests" / "lab"))
import labctl  # noqa: E402

GUEST_SCRIPT = r'''
import json, os, subprocess, sys, time

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")

def meta(d, n):
    os.makedirs(d, exist_ok=True)
    payload = b"x" * 64
    t0 = time.perf_counter()
    for i in range(n):
        with open(f"{d}/f{i:05d}", "wb") as f:
            f.write(payload)
    t1 = time.perf_counter()
    for i in range(n):
        os.stat(f"{d}/f{i:05d}")
    t2 = time.perf_counter()
    for i in range(n):
        os.unlink(f"{d}/f{i:05d}")
    t3 = time.perf_counter()
    os.rmdir(d)
    return {"create": t1 - t0, "stat": t2 - t1, "unlink": t3 - t2}

def untar(d, tarball):
    os.makedirs(d, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["tar", "xf", tarball, "-C", d], check=True)
    t1 = time.perf_counter()
    subprocess.run(["rm", "-rf", d], check=True)
    t2 = time.perf_counter()
    return {"untar": t1 - t0, "rm_tree": t2 - t1}

def stream(d, mib):
    os.makedirs(d, exist_ok=True)
    path = f"{d}/stream.bin"
    buf = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    t1 = time.perf_counter()
    drop_caches()
    t2 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    t3 = time.perf_counter()
    os.unlink(path)
    os.rmdir(d)
    return {"write": t1 - t0, "read": t3 - t2}

base, files, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
drop_caches()
out = {}
out.update(meta(base + "/meta", files))
out.update(untar(base + "/tree", "/root/bench-tree.tar"))
out.update(stream(base + "/stream", mib))
print(json.dumps(out))
'''


def log(msg: str) -> None:
    print(f"[bench-dp] {msg}", file=sys.stderr, flush=True)


def ansible_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(Path.home() / ".cache/virtiofs-libvirt/collections"))
    env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"})
    return env


def install(lab: dict, profiles: dict) -> dict:
    """The host role renders one wrapper per profile; returns name -> wrapper path."""
    wrappers = {name: {"path": f"{INSTALL_DIR}/{name}.sh", "options": opts} for name, opts in profiles.items()}
    extra = {
        "virtiofs_host_install_packages": False,
        "virtiofs_host_virtiofsd_method": "url",
        "virtiofs_host_virtiofsd_url": lab["artifact_url"],
        "virtiofs_host_virtiofsd_checksum": f"sha256:{lab['artifact_sha256']}",
        "virtiofs_host_virtiofsd_allow_http": True,
        "virtiofs_host_virtiofsd_install_dir": INSTALL_DIR,
        "virtiofs_host_wrappers": wrappers,
        "virtiofs_host_default_wrapper": next(iter(profiles)),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("- name: Install\n  hosts: hypervisor\n  gather_facts: false\n"
                "  roles:\n    - role: virtiofs.libvirt.host\n")
    try:
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", lab["inventory"], f.name,
                               "-e", json.dumps(extra)], capture_output=True, text=True, env=ansible_env(), cwd=ROOT,
                              check=False)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise SystemExit(f"the host role failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {name: w["path"] for name, w in wrappers.items()}


def guest(cmd: str, timeout: int = 3600) -> str:
    return labctl.guest_ssh(PORT, cmd, timeout=timeout).stdout


def daemon_cmdlines() -> list[str]:
    out = []
    for pidfile in sorted(glob.glob(f"/run/libvirt/qemu/*-{DOMAIN}-*-fs.pid")):
        try:
            pid = int(Path(pidfile).read_text().strip())
            out.append(" ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]))
        except (OSError, ValueError):
            continue
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--profile", action="append", default=[], metavar="NAME=JSON",
                    help="another wrapper profile to measure, e.g. pool4='{\"thread_pool_size\": 4}' "
                         "(options merged over the role default)")
    ap.add_argument("--no-candidates", action="store_true", help="measure only role-default")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-data-plane.json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (qemu:///system)")
    lab = labctl.load_state()
    if not lab:
        sys.exit("the lab is not up (no lab.json): run tests/lab/lab up")

    role_default = yaml.safe_load((ROOT / "roles/host/defaults/main.yml").read_text())["virtiofs_host_wrapper_default_options"]
    profiles = {"role-default": dict(role_default)}
    if not args.no_candidates:
        # the same with a thread pool (libvirt's <thread_pool> or the wrapper option)
        profiles["pool4"] = {**role_default, "thread_pool_size": 4}
        # file handles off again (the daemon default up to 1.13.2), the rest as the role default
        profiles["fh-never"] = {**role_default, "inode_file_handles": "never"}
    for spec in args.profile:
        name, sep, text = spec.partition("=")
        if not sep or not name:
            ap.error(f"--profile {spec!r}: write NAME=JSON, e.g. pool8='{{\"thread_pool_size\": 8}}'")
        profiles[name] = {**role_default, **json.loads(text)}

    log(f"installing virtiofsd and {len(profiles)} wrapper profiles with the host role")
    wrappers = install(lab, profiles)
    daemon = f"{INSTALL_DIR}/virtiofsd"
    Path(HOST_DIR).mkdir(parents=True, exist_ok=True)

    targets = {}  # name -> (kind, tag)
    filesystems = [{"tag": "vfs0", "source": HOST_DIR, "binary": daemon}]
    targets["virtiofsd-defaults"] = ("virtiofs", "vfs0")
    for i, name in enumerate(profiles, start=1):
        filesystems.append({"tag": f"vfs{i}", "source": HOST_DIR, "binary": wrappers[name]})
        targets[name] = ("virtiofs", f"vfs{i}")
    filesystems.append({"tag": "ninep", "source": HOST_DIR, "driver": "path"})
    targets["virtio-9p"] = ("9p", "ninep")
    targets["guest-disk"] = ("disk", None)

    results: dict[str, list[dict]] = {name: [] for name in targets}
    try:
        log(f"booting {DOMAIN} with {len(filesystems)} filesystems (TCG)")
        labctl.clone_guest(DOMAIN, PORT, shared_memory=True, filesystems=filesystems)
        cmdlines = daemon_cmdlines()
        subprocess.run(labctl.ssh_argv(PORT) + ["cat > /root/bench.py"], input=GUEST_SCRIPT, text=True, check=True)
        guest("tar cf /root/bench-tree.tar -C /usr/lib python3.11 && uname -r > /root/kernel")
        kernel = guest("cat /root/kernel").strip()
        for name, (kind, tag) in targets.items():
            if kind == "virtiofs":
                guest(f"mkdir -p /mnt/{tag} && (mountpoint -q /mnt/{tag} || mount -t virtiofs {tag} /mnt/{tag})")
            elif kind == "9p":
                guest(f"mkdir -p /mnt/{tag} && (mountpoint -q /mnt/{tag} || mount -t 9p -o {NINEP_OPTS} {tag} /mnt/{tag})")
        for rep in range(args.repeat):
            for name, (kind, tag) in targets.items():
                base = f"/root/bench-{rep}" if kind == "disk" else f"/mnt/{tag}/{name}-{rep}"
                log(f"rep {rep + 1}/{args.repeat}: {name}")
                t0 = time.monotonic()
                out = guest(f"python3 /root/bench.py {base} {args.files} {args.mib}")
                res = json.loads(out.strip().splitlines()[-1])
                results[name].append(res)
                log(f"  {name}: {time.monotonic() - t0:.0f}s " + ", ".join(f"{k}={v:.2f}" for k, v in res.items()))
    finally:
        labctl.destroy_guest(DOMAIN)
        subprocess.run(["rm", "-rf", HOST_DIR, INSTALL_DIR], check=False)

    phases = ["create", "stat", "unlink", "untar", "rm_tree", "write", "read"]
    best = {name: {p: min(r[p] for r in runs) for p in phases} for name, runs in results.items()}
    for b in best.values():
        b["meta_total"] = b["create"] + b["stat"] + b["unlink"]
        b["write_MiBps"] = args.mib / b["write"]
        b["read_MiBps"] = args.mib / b["read"]

    print()
    print(f"Data plane: lab guest {DOMAIN} (TCG, 2 vCPUs, 1 GiB, guest kernel {kernel}), host dir {HOST_DIR} (ext4),")
    print(f"virtiofsd {lab.get('crate_version')} (libvirt's -o source=... calling style), 9p: {NINEP_OPTS};")
    print(f"best of {args.repeat} runs; seconds unless noted.")
    print()
    cols = ["create", "stat", "unlink", "meta_total", "untar", "rm_tree", "write_MiBps", "read_MiBps"]
    hdr = f"{'target':24s} " + " ".join(f"{c:>11s}" for c in cols)
    print(hdr)
    print("-" * len(hdr))
    for name in targets:
        print(f"{name:24s} " + " ".join(f"{best[name][c]:11.2f}" for c in cols))
    print()

    def ratio_line(name, ref, invert_speed=True):
        parts = []
        for c in ("meta_total", "untar", "rm_tree"):
            parts.append(f"{c} {best[ref][c] / best[name][c]:5.2f}x")
        for c in ("write_MiBps", "read_MiBps"):
            parts.append(f"{c.split('_', maxsplit=1)[0]} {best[name][c] / best[ref][c]:5.2f}x")
        return ", ".join(parts)

    print("speed relative to virtio-9p (>1: faster than 9p)")
    for name in targets:
        if name != "virtio-9p":
            print(f"  {name:24s} {ratio_line(name, 'virtio-9p')}")
    print("speed relative to the guest's own disk (>1: faster than the disk)")
    for name in targets:
        if name != "guest-disk":
            print(f"  {name:24s} {ratio_line(name, 'guest-disk')}")
    print()
    vfs = [n for n, (kind, tag) in targets.items() if kind == "virtiofs"]

    def score(n):  # geometric mean of the speeds relative to virtiofsd-defaults (>1: better)
        ref = best["virtiofsd-defaults"]
        parts = [ref[c] / best[n][c] for c in ("meta_total", "untar", "rm_tree")]
        parts += [best[n][c] / ref[c] for c in ("write_MiBps", "read_MiBps")]
        prod = 1.0
        for p in parts:
            prod *= p
        return prod ** (1 / len(parts))

    print("virtio-fs configurations, geometric mean speed over meta/untar/rm/write/read vs virtiofsd-defaults:")
    for n in sorted(vfs, key=score, reverse=True):
        print(f"  {n:24s} {score(n):5.2f}x   options {profiles.get(n, 'daemon defaults')}")
    print()
    print("daemons libvirt started (pid file -> /proc/<pid>/cmdline):")
    for line in cmdlines:
        print(f"  {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"profiles": profiles, "runs": results, "best": best, "kernel": kernel,
                                    "files": args.files, "mib": args.mib, "repeat": args.repeat,
                                    "daemons": cmdlines}, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
