"""CPU time of this machine's processes, for the benchmarks (Linux ``/proc``)."""

from __future__ import annotations

import os


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """User + system CPU each process has used so far, seconds (one that exited: absent)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a process that has exited
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU used since ``before`` (``cpu_by_process`` then) by ``pids``, the processes now.

    A process started meanwhile counts from zero. One that exited meanwhile (a
    database session closed for its age, say) is left out: the figure is short
    by what it used meanwhile, rather than negative by all it had used before.
    """
    return sum(used - before.get(pid, 0.0) for pid, used in cpu_by_process(pids).items())


def database_pids() -> list[int]:
    """The PostgreSQL server's processes (backends and background workers); ``cpu_by_process``
    reads them only when the database runs on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity")
        return [pid for (pid,) in cursor.fetchall()]
