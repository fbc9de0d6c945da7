"""Timing a fresh process and its peak memory, for the reference benches.

Shared by tools/bench/*.py. The parent must not have imported
torch (or anything large) before calling `run_child`: a child forked from it
starts with the parent's resident pages, and `ru_maxrss` would report at
least those (a `/bin/true` child of a Python with torch imported reads about
525 MiB).
"""
import os
import subprocess
import sys
import time


def run_child(cmd):
    """Runs `cmd` to completion; returns (wall seconds, peak RSS MiB, stdout).
    Exits with the tail of the child's stderr when it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{err.decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, out.decode()
