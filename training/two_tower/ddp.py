"""Data-parallel two-tower training under torchrun (gloo on CPU, NCCL where GPUs are).

    torchrun --nproc_per_node=2 -m training.two_tower.ddp --data DIR --out DIR [--set k=v ...]

Every rank prepares the same examples (deterministic), takes its share of each epoch's
batches and all-reduces gradients; rank 0 validates, checkpoints and writes
``<out>/model.pt`` (state_dict) and ``<out>/history.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from features.dataset import load_dataset
from training.two_tower.config import load_two_tower_config
from training.two_tower.train import prepare, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    try:
        rank = dist.get_rank()
        cfg = load_two_tower_config(args.config, args.overrides)
        ds = load_dataset(args.data, quarantine_dir=args.out / f"quarantine_rank{rank}")
        prep = prepare(ds, cfg)
        result = train(prep, cfg, checkpoint_dir=args.out / "checkpoints")
        if rank == 0:
            torch.save(result.model.state_dict(), args.out / "model.pt")
            (args.out / "history.json").write_text(json.dumps(
                {"world_size": dist.get_world_size(), "best_epoch": result.best_epoch,
                 "best_val_recall": result.best_val_recall, "history": result.history,
                 "pid": os.getpid()}, indent=2))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
