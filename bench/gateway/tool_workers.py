"""What running a Python tool in a worker process costs, against running it on a thread.

The same ``calculate`` call N times, one at a time, in this process: on a
worker thread (what the gateway did before tool workers), then through the
pool of worker processes (``mcpbilling.gateway.workers``): wall time per call,
and CPU per call of this (the server's) process and of the workers. Run by hand:

    .venv/bin/python bench/gateway/tool_workers.py --calls 3000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")

ARGUMENTS = {"expression": "(2 + 3) * sqrt(16) / 2^3"}


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def measure(calls: int) -> None:
    import anyio
    from django.conf import settings

    from mcpbilling.gateway.registry import python_tools
    from mcpbilling.gateway.workers import tool_workers

    tool = python_tools()["calculate"]
    validated = tool.validate(ARGUMENTS)
    started, cpu = time.perf_counter(), own_cpu()
    for _ in range(calls):
        await anyio.to_thread.run_sync(tool.call, validated)
    print(
        f"thread:  {(time.perf_counter() - started) / calls * 1e6:6.0f} us wall, "
        f"{(own_cpu() - cpu) / calls * 1e6:5.0f} us CPU a call"
    )
    async with (
        anyio.create_task_group() as group,
        tool_workers(group, size=2, modules=settings.MCP_TOOL_MODULES, memory_mb=0) as workers,
    ):
        for _ in range(200):  # warm up
            await workers.run("calculate", validated, cpu_s=5)
        pids = [worker.process.pid for worker in workers._all]
        started, cpu, worker_cpu = time.perf_counter(), own_cpu(), process_cpu(pids)
        for _ in range(calls):
            await workers.run("calculate", validated, cpu_s=5)
        print(
            f"process: {(time.perf_counter() - started) / calls * 1e6:6.0f} us wall, "
            f"{(own_cpu() - cpu) / calls * 1e6:5.0f} us CPU a call in the server, "
            f"{(process_cpu(pids) - worker_cpu) / calls * 1e6:5.0f} us in the workers"
        )


def main() -> None:
    import anyio
    import django

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    options = parser.parse_args()
    django.setup()
    print(f"load average {os.getloadavg()[0]:.2f}")
    anyio.run(measure, options.calls)


if __name__ == "__main__":  # the tool workers' fork server imports this module again
    main()
