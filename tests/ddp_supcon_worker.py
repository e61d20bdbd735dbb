"""Run supcon_loss on 2 gloo ranks (halves of one batch, wrapped in DDP) and on 1 process.

Usage: python tests/ddp_supcon_worker.py OUT.json — writes the single-process loss and encoder
gradients, the mean of the per-rank losses and each rank's gradients after DDP's all-reduce.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_modules.losses import supcon_loss  # noqa: E402

BATCH, VIEWS, WORLD = 8, 2, 2


def make_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8))


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, VIEWS, 12, generator=g), torch.randint(0, 3, (BATCH,), generator=g)


def loss_of(encoder: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    z = F.normalize(encoder(x.reshape(-1, 12)), dim=-1).reshape(x.shape[0], VIEWS, -1)
    return supcon_loss(z, labels, temperature=0.5, base_temperature=0.07)


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    model = nn.parallel.DistributedDataParallel(make_encoder())
    x, labels = make_data()
    part = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    loss = loss_of(model, x[part], labels[part])
    loss.backward()
    losses = [torch.zeros(1) for _ in range(WORLD)]
    dist.all_gather(losses, loss.detach().reshape(1))
    grads = {n: p.grad.tolist() for n, p in model.module.named_parameters()}
    Path(f"{out}.rank{rank}").write_text(json.dumps({"loss": float(torch.cat(losses).mean()), "grads": grads}))
    del model, loss
    dist.barrier()
    dist.destroy_process_group()
    # Leave without the interpreter's teardown: under load a rank could abort at exit, after the
    # group was destroyed and its result written ("terminate called without an active exception":
    # a C++ thread still joinable when the process's static objects are destroyed; 1 in ~20-50 runs
    # beside CPU-bound processes). The result file is complete and closed by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(out: str) -> None:
    encoder = make_encoder()
    x, labels = make_data()
    loss = loss_of(encoder, x, labels)
    loss.backward()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(port, out), nprocs=WORLD, join=True)
    ranks = [json.loads(Path(f"{out}.rank{r}").read_text()) for r in range(WORLD)]
    result = {
        "single_loss": loss.item(),
        "single_grads": {n: p.grad.tolist() for n, p in encoder.named_parameters()},
        "ddp_loss": ranks[0]["loss"],
        "ddp_grads_rank0": ranks[0]["grads"],
        "ddp_grads_rank1": ranks[1]["grads"],
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
