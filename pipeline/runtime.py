"""Where this process computes: its device, and its place among the processes of a distributed run.

A stage that trains or dumps runs in one process, or in `distributed.nproc_per_node` x `distributed.nnodes`
processes started by torchrun (torch.distributed.run). `launch` makes the stage's one-line command start itself
through torchrun when params ask for several processes, so dvc.yaml's `cmd` stays `python stages/X.py ...`.
Under torchrun every process reads RANK, WORLD_SIZE and LOCAL_RANK from its environment; `world()` joins the
process group (NCCL on CUDA, gloo on the CPU, with `distributed.backend: auto`) and gives each process its own
GPU. torchrun stops every process when one fails, so a failing rank ends the stage with its error, not a hang.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT = timedelta(minutes=60)  # rank 0 validates while the others wait at a barrier


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, curves, metrics and store attributes."""
        return self.rank == 0

    @property
    def part(self) -> tuple[int, int]:
        """(rank, ranks): which share of each batch this process takes (pipeline/data/batches.py)."""
        return self.rank, self.size

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over every process (in place); the tensor itself in a single process."""
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


_WORLD: list[World] = []  # this process's, once known


def world(backend: str = "auto") -> World:
    """This process's place: a single process, or (under torchrun) a member of the process group, joined on the
    first call (`backend` counts only then)."""
    if _WORLD:
        return _WORLD[0]
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        _WORLD.append(World())
        return _WORLD[0]
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {local_rank} of this machine has no GPU of its own: "
                               f"distributed.nproc_per_node is more than its {torch.cuda.device_count()} GPUs")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    _WORLD.append(World(rank, size, local_rank, backend))
    return _WORLD[0]


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world().local_rank) if world().size > 1 else torch.device("cuda")
    return torch.device("cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (training and inference alike); a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def launch(settings, argv: list[str] | None = None, module: str | None = None) -> None:
    """Start this command again under torchrun when params ask for several processes and it is not yet under
    torchrun; otherwise return and let the caller run. `argv` defaults to this process's own arguments; `module`
    runs `python -m module` instead of a script (the `cmkd` command)."""
    cfg = settings.distributed
    if cfg.nproc_per_node * cfg.nnodes == 1 or "LOCAL_RANK" in os.environ:
        world(cfg.backend)  # under torchrun: join the group before any work
        return
    argv = list(sys.argv if argv is None else argv)
    where = (["--standalone"] if cfg.nnodes == 1 else
             ["--nnodes", str(cfg.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", cfg.rdzv_endpoint])
    target = ["-m", module, *argv[1:]] if module else argv
    command = [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(cfg.nproc_per_node),
               *target]
    print(f"launching {cfg.nproc_per_node * cfg.nnodes} processes: {' '.join(command)}", flush=True)
    sys.stdout.flush()
    os.execv(sys.executable, command)
