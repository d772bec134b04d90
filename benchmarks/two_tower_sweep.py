"""Quick two-tower sweep on the validation window (no blend, no test data touched).

    .venv/bin/python benchmarks/two_tower_sweep.py "lr=0.0005,epochs=2" "temperature=0.2"
Each argument is a comma-separated set of TwoTowerConfig overrides; prints validation
recall@20 per epoch (new items when ``new_items_only``) beside popularity on the same task.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from features.dataset import load_dataset
from training.metrics import recall_at_k
from training.two_tower.config import TwoTowerConfig, load_two_tower_config
from training.two_tower.train import prepare, top_items, train


def main() -> None:
    ds = load_dataset(None, quarantine_dir=Path(tempfile.mkdtemp(prefix="growth_quarantine_")))
    base = load_two_tower_config()
    prep = prepare(ds, base)
    counts = np.bincount(prep.item, minlength=prep.vocab.n_items + 1)[1:].astype(np.float32)
    users = np.ones((len(prep.val_state.household_ids), 1), np.float32)
    top, _ = top_items(users, counts[:, None], 20, prep.val_exclude)
    recs = {int(h): (top[i] + 1).tolist() for i, h in enumerate(prep.val_state.household_ids)}
    print("popularity", round(recall_at_k(recs, prep.val_targets, 20), 4), flush=True)
    for spec in sys.argv[1:]:
        cfg = TwoTowerConfig.model_validate(
            {**base.model_dump(), **dict(kv.split("=") for kv in spec.split(","))})
        result = train(prep, cfg)
        print(spec, [round(h["val_recall_at_20"], 4) for h in result.history],
              f"{result.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
