"""Save and load a trained recommender in safe formats only.

    model.pt      torch state_dict (loaded with weights_only=True)
    config.json   the resolved TwoTowerConfig: with the vocabulary it rebuilds the model
    vocab.npz     product and household ids, item attribute codes (allow_pickle=False)
    blend.txt     LightGBM text model ranking every candidate
    blend_new.txt LightGBM text model ranking products new to the household
    index/        FAISS index of the item embeddings of exactly this model (retrieval.py)
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import torch

from features.dataset import Dataset
from training.retrieval import IndexConfig, ItemIndex
from training.two_tower.config import TwoTowerConfig
from training.two_tower.data import Vocab
from training.two_tower.job import Recommender
from training.two_tower.train import build_model


def save(rec: Recommender, folder: Path, ds: Dataset, as_of: date,
         model_version: str | None = None) -> ItemIndex:
    """Write every part of ``rec`` to ``folder``; returns the FAISS index it wrote, built
    from item embeddings as of ``as_of``."""
    if rec.blender is None or rec.new_blender is None:
        raise ValueError("the recommender has no blend: fit_blend before saving")
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(rec.model.state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(rec.cfg.model_dump_json(indent=2))
    v = rec.vocab
    np.savez(folder / "vocab.npz", product_ids=v.product_ids, household_ids=v.household_ids,
             item_categorical=v.item_categorical,
             categorical_sizes=np.asarray(v.categorical_sizes, dtype=np.int64))
    rec.blender.save(folder / "blend.txt")
    rec.new_blender.save(folder / "blend_new.txt")
    index = ItemIndex.build(rec.item_embeddings(ds, as_of), v.product_ids,
                            IndexConfig(exact_max_items=rec.cfg.index_exact_max_items,
                                        seed=rec.cfg.seed),
                            model_version=model_version)
    index.save(folder / "index")
    return index


def load(folder: Path) -> Recommender:
    """Rebuild a recommender from ``folder`` without unpickling anything."""
    folder = Path(folder)
    for name in ("model.pt", "config.json", "vocab.npz", "blend.txt", "blend_new.txt"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing: not a two-tower bundle")
    cfg = TwoTowerConfig.model_validate(json.loads((folder / "config.json").read_text()))
    with np.load(folder / "vocab.npz", allow_pickle=False) as z:
        vocab = Vocab(z["product_ids"], z["household_ids"], z["item_categorical"],
                      [int(n) for n in z["categorical_sizes"]])
    model = build_model(vocab, cfg)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    blender, new_blender = Recommender.blenders(cfg)
    return Recommender(model, vocab, cfg, blender.load(folder / "blend.txt"),
                       new_blender.load(folder / "blend_new.txt"))
