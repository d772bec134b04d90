"""The same training runs under torchrun with 2 processes (DDP, gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from features.synth import generate
from tests.servers import free_port
from training.two_tower.config import TwoTowerConfig
from training.two_tower.data import Vocab
from training.two_tower.train import build_model

SMALL = ["as_of=2017-06-05", "window_days=14", "n_cutoffs=3", "history_len=30", "dim=16",
         "id_dim=16", "attr_dim=4", "hidden=32", "batch_size=256", "epochs=2",
         "lr=0.003", "new_items_only=false"]  # a tiny sample: a faster rate than the default


def test_torchrun_two_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data, households=300, products=400, weeks=24, seed=5)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "training.two_tower.ddp", "--data", str(data), "--out", str(out)]
    cmd += [a for v in SMALL for a in ("--set", v)]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, text=True, capture_output=True, timeout=300, env=env,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr[-4000:]
    summary = json.loads((out / "history.json").read_text())
    assert summary["world_size"] == 2 and len(summary["history"]) == 2
    # the same kind of model: the state_dict loads into a single-process model
    state = torch.load(out / "model.pt", weights_only=True)
    cfg = TwoTowerConfig.model_validate(dict(v.split("=") for v in SMALL))
    n_items = state["item.item.weight"].shape[0] - 1
    n_households = state["user.household.weight"].shape[0] - 1
    sizes = [state[f"item.attrs.{j}.weight"].shape[0] for j in range(5)]
    vocab = Vocab(np.arange(n_items), np.arange(n_households),
                  np.zeros((n_items + 1, 5), dtype=np.int64), sizes)
    build_model(vocab, cfg).load_state_dict(state)
    assert summary["best_val_recall"] > 3 * 20 / n_items
