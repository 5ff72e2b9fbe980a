"""Data-parallel training under torchrun: this process's place in the group, and the
few collective calls the training loop needs.

    torchrun --nproc_per_node=2 -m vae_core.train --dataset mnist --latent-dim 16 --out runs/ddp
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 -m vae_core.train ...

torchrun starts one process per rank and sets WORLD_SIZE, RANK and LOCAL_RANK; a plain
`python -m vae_core.train` is a group of one, and every function here is then a no-op, so
the loop reads the same either way. gloo joins CPU processes, NCCL the GPUs (one per
process, cuda:LOCAL_RANK).

How the loop uses it (vae_core/train.py):
- Every rank holds the whole uint8 training set (it loads it by name, as one process does)
  and draws the same seeded permutation each epoch. Step s takes the global batch
  perm[s*G:(s+1)*G], G = world x --batch-size, and rank r trains on its rows r, r+world, ...:
  disjoint shards that together are exactly the images one process with --batch-size G
  would see in that step. DistributedDataParallel averages the gradients, so the step
  equals that process's step except for the reparameterisation noise (each rank draws its own).
- Objectives built on batch statistics (beta-TCVAE's log q(z) estimator, MMD, DIP's
  covariance, FactorVAE's permutation) see the rank's own --batch-size rows, as in any
  data-parallel run of them; FactorVAE's discriminator averages its gradients over the
  group and a VQ codebook's EMA statistics are summed over it, so their state stays the same
  on every rank.
- The epoch's sums (loss, KL per dimension, the family's terms, image counts) are summed
  over the group before they are logged: the metrics are the whole epoch's, not rank 0's shard.
- Rank 0 alone writes the run folder (config, metrics, grids, checkpoint): a distributed
  run's folder is an ordinary checkpoint. If any rank fails, torchrun stops the others
  (SIGTERM: the loop's Ctrl-C path) and the last completed epoch's files stay intact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from vae_core import VaeError


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes files and prints."""
        return self.rank == 0


def world_size() -> int:
    """The group size torchrun announced (1 for a plain process)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Rank 0 of torchrun's group, or a plain process: the one that prints and writes (readable
    before setup, from the environment torchrun gives each rank)."""
    return os.environ.get("RANK", "0") == "0"


def setup(device: torch.device) -> tuple[Group, torch.device]:
    """Join torchrun's group when there is one: (this rank's Group, the device it trains on)."""
    world = world_size()
    if world == 1:
        return Group(), device
    import torch.distributed as dist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise VaeError(f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} CUDA GPU(s): "
                           f"start at most that many processes per node (--nproc_per_node).")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise VaeError(f"Distributed training runs on CPUs (gloo) or CUDA GPUs (NCCL), not on {device.type}; "
                       f"use --device cpu or cuda.")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Group(rank, world, local), device


def barrier() -> None:
    """Wait until every rank got here (the end of training: the others wait for rank 0's files)."""
    if is_distributed():
        import torch.distributed as dist
        dist.barrier()


def teardown() -> None:
    if is_distributed():
        import torch.distributed as dist
        dist.destroy_process_group()


def is_distributed() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """t summed over the group, in place (t itself for one process)."""
    if is_distributed():
        import torch.distributed as dist
        dist.all_reduce(t)
    return t


def average_gradients(module: torch.nn.Module) -> None:
    """Each parameter's gradient replaced by its mean over the group (for a network trained
    beside the DDP-wrapped model with its own optimiser, like FactorVAE's discriminator)."""
    if not is_distributed():
        return
    import torch.distributed as dist
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if grads:
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        _unflatten(flat, grads)


def _unflatten(flat: torch.Tensor, grads: list[torch.Tensor]) -> None:
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def shard(global_idx: torch.Tensor, group: Group) -> torch.Tensor:
    """This rank's rows of a global batch of indices: r, r + world, r + 2 world, ..."""
    return global_idx if group.world == 1 else global_idx[group.rank::group.world]


def steps_per_epoch(n: int, batch_size: int, group: Group) -> int:
    """Optimiser steps in an epoch of n images at batch_size per rank. A last global batch too
    small to give every rank an image is dropped (it would leave a rank with an empty batch)."""
    g = batch_size * group.world
    full, rest = divmod(n, g)
    return full + (1 if rest >= group.world else 0)
