"""What every benchmark shares: timing a child `nsep` process and describing the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def measure(args: list[str], cwd: Path | None = None, stdout=subprocess.DEVNULL) -> dict:
    """Run ``nsep ARGS`` in a child process; return its wall time and peak RSS (from ``os.wait4``)."""
    command = [sys.executable, "-m", "nsep", *args]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=stdout, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nsep failed: {' '.join(command)}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def machine() -> dict:
    """CPU, GPU and library versions of this machine."""
    import torch

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
