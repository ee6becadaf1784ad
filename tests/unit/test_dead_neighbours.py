"""Which workers of this host the supervisor of `nexus worker` takes for dead, and ends the leases
of (nexus/supervisor.py): those whose process is gone, and one that had its own pid (a worker of an
earlier process with that pid); never a live one or another host's."""

from __future__ import annotations

import os
import subprocess
import sys

from nexus.supervisor import dead_neighbours, process_alive


def test_gone_processes_and_this_pid_are_dead_live_ones_and_other_hosts_are_not() -> None:
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    live, me = os.getppid(), os.getpid()
    ids = [f"box:{gone.pid}:aaaa", f"box:{live}:bbbb", f"box:{me}:cccc", "box:x:dddd"]
    assert dead_neighbours(ids, "box", me) == [f"box:{gone.pid}:aaaa", f"box:{me}:cccc"]
    assert process_alive(live) and not process_alive(gone.pid)
    assert not process_alive(None) and not process_alive(0)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", ""])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not process_alive(child.pid)
    child.wait()
