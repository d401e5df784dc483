"""A tiny training run used by the tests to prove that `accelerate launch` scales :func:`train`.

    accelerate launch --cpu --num_processes 2 -m multiequi.lab.training._smoke --out DIR

Each process writes ``DIR/rank<k>.json`` with the number of processes, the steps taken and a
checksum of the final weights (equal on every rank when gradients are synchronised).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from multiequi import Equitune
from multiequi.groups import Flip

from .loop import TrainConfig, make_accelerator, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="folder for one JSON file per process")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = (x[:, 0] + x[:, -1] > 0).long()
    model = Equitune(nn.Linear(6, 2), Flip(), chunk_size=None)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
    acc = make_accelerator(seed=0)
    result = train(
        model,
        loader,
        lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
        TrainConfig(steps=args.steps, lr=0.1, optimizer="sgd", progress=False),
        accelerator=acc,
    )
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"rank{acc.process_index}.json").write_text(
        json.dumps({"processes": acc.num_processes, "steps": result.steps, "checksum": checksum})
    )
    # Tear the process group down before exit: a gloo group left alive can abort the process at
    # interpreter shutdown ("terminate called without an active exception").
    acc.wait_for_everyone()
    acc.end_training()


if __name__ == "__main__":
    main()
