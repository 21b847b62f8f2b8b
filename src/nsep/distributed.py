"""Several processes on one job: torch.distributed, set up the way torchrun sets it up.

A process learns its place from torchrun's variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); without them it is alone, and every
helper here does what a single process would. :func:`launch` starts N local processes with
those variables set, as ``torchrun --standalone --nproc-per-node N`` would. The group talks
over NCCL when its processes hold GPUs and over gloo on the CPU. torch is imported only when a
group is used, so the command line starts fast.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from nsep.errors import UsageError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def rank() -> int:
    """This process's place in the group (0 when alone)."""
    return int(os.environ.get("RANK", 0))


def world() -> int:
    """Processes in the group (1 when alone)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def local_world() -> int:
    """Processes of the group on this machine."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world()))


def is_main() -> bool:
    """Whether this process reports and writes what the group shares (rank 0)."""
    return rank() == 0


def silent(_event: object) -> None:
    """The report of a process other than the first, which reports for the group: nothing."""


def setup(name: str = "auto") -> torch.device:
    """This process's device (``name`` as ``--device`` gives it), after joining the group if there is one.

    In a group on CUDA each process takes the GPU of its ``LOCAL_RANK``.
    """
    import torch
    import torch.distributed as dist

    from nsep.models.base import pick_device

    device = pick_device(name)
    if world() == 1:
        return device
    if device.type == "cuda" and device.index is None:
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise UsageError(f"{local_world()} processes on this machine but {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        cuda = device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
        atexit.register(leave)
    return device


def leave(together: bool = False) -> None:
    """Leave the group if this process is in one; ``together`` waits for every member first, so no
    process tears its connections down while another still uses them (gloo then aborts the other)."""
    if "torch.distributed" not in sys.modules:  # no group without it; and a finished command need not import torch
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if together:
            try:
                dist.barrier()
            except RuntimeError:  # a member already left, failing: its own exit status tells
                pass
        dist.destroy_process_group()


def local_batch(batch_size: int, processes: int | None = None) -> int:
    """Each process's part of a batch of ``batch_size`` shared by ``processes`` (default: the group's)."""
    processes = processes or world()
    if batch_size % processes:
        raise UsageError(f"--batch-size {batch_size} does not split evenly over {processes} processes")
    return batch_size // processes


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` ready to train in the group: DistributedDataParallel, with SyncBatchNorm on GPUs.

    The module's own layers are converted in place, so ``model`` itself stays the one to save. The
    CPU has no SyncBatchNorm: there each process normalises with its own part of the batch. Alone,
    ``model`` is returned as it is.
    """
    if world() == 1:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":
        return DistributedDataParallel(model)
    return DistributedDataParallel(torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), device_ids=[device.index])


def all_sum(values: Sequence[float]) -> list[float]:
    """``values`` summed element-wise over the group's processes."""
    if world() == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    total = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def shard(items: Sequence[T]) -> Sequence[T]:
    """This process's share of ``items``: every ``WORLD_SIZE``-th one, from its ``RANK`` on."""
    return items[rank() :: world()]


def gather(mine: list[T]) -> list[T]:
    """What every process made of its :func:`shard`, one item per item of the whole list, back in that list's order.

    Every process gets the whole list.
    """
    if world() == 1:
        return mine
    import torch.distributed as dist

    parts: list[list[T]] = [[] for _ in range(world())]
    dist.all_gather_object(parts, mine)
    return [parts[i % len(parts)][i // len(parts)] for i in range(sum(map(len, parts)))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(processes: int, entry: Callable[..., object], *args: object) -> int:
    """Run ``entry(*args)`` in ``processes`` new local processes that form one group; wait for them all.

    Returns 0, or the exit status of the first process seen to fail (the others are then stopped).
    """
    import torch.multiprocessing as mp

    try:
        mp.spawn(_member, (processes, _free_port(), entry, args), nprocs=processes)
    except mp.ProcessExitedException as err:
        return err.exit_code if err.exit_code > 0 else 128 - err.exit_code
    return 0


def _member(index: int, processes: int, port: int, entry: Callable[..., object], args: tuple) -> None:
    """One process of :func:`launch`: torchrun's variables, a fair share of the CPU, then ``entry``."""
    import torch

    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(processes),
                      LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    try:
        entry(*args)
    except SystemExit as done:  # a command line ends with sys.exit(0) when it succeeds
        if done.code not in (None, 0):
            raise
    leave(together=True)
