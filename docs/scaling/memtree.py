"""Run a command; every 0.1 s read each descendant's VmHWM (its own peak RSS, kept by the kernel, so no spike is
missed between samples) and VmRSS; at the end print each process's peak and the sum of the tree's current RSS at its
largest, plus the children's ru_maxrss (what /usr/bin/time %M reports). Needs psutil. Usage: python memtree.py CMD..."""
import resource
import subprocess
import sys
import time

import psutil


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM", "VmRSS")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0]) // 1024
    except OSError:
        pass
    return out


started = time.time()
proc = subprocess.Popen(sys.argv[1:])
root = psutil.Process(proc.pid)
peaks, names, tree_max, tree_at = {}, {}, 0, 0.0
while proc.poll() is None:
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        break
    total = 0
    for p in procs:
        s = status(p.pid)
        if not s:
            continue
        total += s.get("VmRSS", 0)
        if s.get("VmHWM", 0) > peaks.get(p.pid, (0, 0))[0]:
            peaks[p.pid] = (s["VmHWM"], round(time.time() - started, 1))
        if p.pid not in names:
            try:
                names[p.pid] = " ".join(p.cmdline())[:110]
            except psutil.Error:
                names[p.pid] = "?"
    if total > tree_max:
        tree_max, tree_at = total, round(time.time() - started, 1)
    time.sleep(0.1)
print(f"exit {proc.returncode} after {time.time() - started:.1f} s")
for pid, (mb, at) in sorted(peaks.items(), key=lambda kv: -kv[1][0])[:8]:
    print(f"pid {pid}: VmHWM {mb} MB (last rise seen at {at} s) {names.get(pid)}")
print(f"sum of the tree's RSS at its largest: {tree_max} MB at {tree_at} s")
print(f"children's ru_maxrss: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024} MB")
