"""Two-tower on small synthetic data: it learns, it is deterministic, it resumes exactly."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from features.dataset import load_dataset
from features.sources import GrowthError
from features.synth import generate
from training.two_tower.config import TwoTowerConfig
from training.two_tower.model import in_batch_softmax_loss
from training.two_tower.rerank import Blender
from training.two_tower.train import check_history, prepare, train

# all items (repeats included): a signal strong enough to show the machinery learns
CFG = TwoTowerConfig(as_of=date(2017, 6, 5), window_days=14, n_cutoffs=3, history_len=30,
                     new_items_only=False,
                     dim=16, id_dim=16, attr_dim=4, hidden=32, batch_size=256, epochs=3,
                     lr=3e-3, patience=5, candidates=30, rerank_rounds=20)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tt")
    generate(root / "data", households=300, products=400, weeks=24, seed=3)
    ds = load_dataset(root / "data", quarantine_dir=root / "q")
    return ds, prepare(ds, CFG)


def test_loss_masks_accidental_hits() -> None:
    user = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    item = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    ids = torch.tensor([7, 7, 9])  # rows 0 and 1 hold the same product
    t = torch.tensor(1.0)
    loss = in_batch_softmax_loss(user, item, ids, t, None)
    logits = user @ item.T
    expected = []
    for i, negatives in ((0, [2]), (1, [2]), (2, [0, 1])):
        denom = math.exp(logits[i, i]) + sum(math.exp(logits[i, j]) for j in negatives)
        expected.append(-(logits[i, i].item() - math.log(denom)))
    assert loss.item() == pytest.approx(sum(expected) / 3, rel=1e-5)


def test_learns_better_than_chance(prepared) -> None:
    _, prep = prepared
    result = train(prep, CFG)
    chance = 20 / prep.vocab.n_items
    assert result.best_val_recall > 3 * chance
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_same_seed_same_history(prepared) -> None:
    _, prep = prepared
    cfg = CFG.model_copy(update={"epochs": 2})
    a, b = train(prep, cfg), train(prep, cfg)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.best_val_recall == b.best_val_recall


def test_resume_reproduces_an_uninterrupted_run(prepared, tmp_path: Path) -> None:
    _, prep = prepared
    full = train(prep, CFG)
    train(prep, CFG.model_copy(update={"epochs": 2}), checkpoint_dir=tmp_path)
    resumed = train(prep, CFG, checkpoint_dir=tmp_path, resume=True)
    assert len(resumed.history) == 3
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_new_only_targets_exclude_earlier_purchases(tiny_folder: Path, tmp_path: Path) -> None:
    from features import schema as s
    from training.two_tower.data import window_targets

    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    every = window_targets(ds, date(2017, 1, 23), 14)
    # household 3 first buys inside the window: not active before it, so not a target
    assert every[[s.HOUSEHOLD_ID, s.PRODUCT_ID]].values.tolist() == [[1, 10]]
    assert window_targets(ds, date(2017, 1, 23), 14, new_only=True).empty  # 10 is a repeat


def test_decay_half_life_is_tuned_on_the_window_before_as_of(tmp_path: Path) -> None:
    """The half-life maximises validation recall@k and never reads the test window."""
    import pandas as pd

    from features import schema as s
    from training.two_tower.job import tune_decay_half_life

    generate(tmp_path / "data", households=200, products=300, weeks=24, seed=4)
    cfg = CFG.model_copy(update={"decay_half_lives": (3.0, 30.0, 3000.0)})
    ds = load_dataset(tmp_path / "data", quarantine_dir=tmp_path / "q")
    best, tried = tune_decay_half_life(ds, cfg)
    assert set(tried) == {3.0, 30.0, 3000.0}
    assert tried[best] == max(tried.values()) and len(set(tried.values())) > 1

    # scramble every line on or after as_of: the choice and the recalls stay the same
    lines = pd.read_parquet(tmp_path / "data" / f"{s.TRANSACTIONS}.parquet")
    after = lines[s.TRANSACTION_TIMESTAMP] >= pd.Timestamp(cfg.as_of)
    assert after.any()
    lines.loc[after, s.PRODUCT_ID] = lines.loc[after, s.PRODUCT_ID].to_numpy()[::-1]
    lines.to_parquet(tmp_path / "data" / f"{s.TRANSACTIONS}.parquet", index=False)
    again = tune_decay_half_life(load_dataset(tmp_path / "data", quarantine_dir=tmp_path / "q2"),
                                 cfg)
    assert again == (best, tried)


def test_new_item_blend_gives_each_household_window_the_same_positive_weight() -> None:
    frame = pd.DataFrame({"household_id": [1, 1, 1, 2, 2, 1, 1],
                          "in_history": [0, 0, 1, 0, 0, 0, 0]})
    label = np.array([1, 1, 1, 1, 0, 1, 0])
    window = np.array([0, 0, 0, 0, 0, 1, 1])
    blender = Blender(10, 4, 1, new_items_only=True, positive_weight=6.0)
    keep = frame["in_history"].to_numpy() == 0
    w = blender.weights(frame["household_id"].to_numpy()[keep], label[keep], window[keep])
    # household 1 has two new positives in window 0 and one in window 1; household 2 one
    assert w.tolist() == [3.0, 3.0, 6.0, 1.0, 6.0, 1.0]
    assert Blender(10, 4, 1).weights(frame["household_id"].to_numpy(), label, window) is None


def test_too_little_history_is_a_clear_error_before_any_run(tiny_folder: Path,
                                                              tmp_path: Path) -> None:
    """The tiny data runs from 2017-01-02 to 2017-01-30: too short for the windows, or
    windows that hold no purchases, are GrowthErrors naming what is needed and what the data
    covers, never an exception from deep in the training code, and leave no MLflow run."""
    import mlflow

    from training.two_tower.run import train_two_tower

    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    short = TwoTowerConfig(as_of=date(2017, 1, 16), window_days=7, n_cutoffs=2)
    with pytest.raises(GrowthError) as err:
        prepare(ds, short)
    assert str(err.value) == (
        "not enough history for the two-tower as of 2017-01-16: it needs 21 days of data "
        "before it (window_days 7 x (n_cutoffs 2 + 1)); "
        f"{tiny_folder} covers 2017-01-02 to 2017-01-30")

    late = TwoTowerConfig(as_of=date(2017, 12, 4))  # 28-day windows long after the data
    check_history(ds, late)  # the span is long enough, but its windows are empty
    with pytest.raises(GrowthError, match="hold 0 examples .* 0 households .* it needs both"):
        prepare(ds, late)
    with pytest.raises(GrowthError, match="and a test window from it on; .* covers "
                                          "2017-01-02 to 2017-01-30"):
        train_two_tower(ds, late, tmp_path / "ckpt", tmp_path / "reports")
    mlflow.set_tracking_uri(None)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_training_examples_read_nothing_from_their_own_window(tmp_path: Path) -> None:
    """Rewriting the spend of every line in the newest training window (its targets stay the
    same products) leaves what that window's examples read unchanged: their households'
    state and the items' price and popularity are as of the window's cutoff."""
    generate(tmp_path / "data", households=120, products=150, weeks=24, seed=5)
    cfg = CFG.model_copy(update={"n_cutoffs": 2})
    before = prepare(load_dataset(tmp_path / "data", quarantine_dir=tmp_path / "q1"), cfg)
    newest, val_cutoff = before.cutoffs[0], before.val_cutoff
    path = tmp_path / "data" / "transactions.parquet"
    tx = pd.read_parquet(path)
    when = tx["transaction_timestamp"]
    inside = (when >= pd.Timestamp(newest)) & (when < pd.Timestamp(val_cutoff))
    assert inside.any()
    tx.loc[inside, "sales_value"] *= 5
    tx.loc[inside, "quantity"] += 3
    tx.to_parquet(path, index=False)
    after = prepare(load_dataset(tmp_path / "data", quarantine_dir=tmp_path / "q2"), cfg)
    assert torch.equal(before.train_item_numeric[0], after.train_item_numeric[0])
    for field in ("household_ids", "history_items", "history_weights", "numeric"):
        assert np.array_equal(getattr(before.users, field), getattr(after.users, field))
    assert np.array_equal(before.item, after.item)
    # the validation cutoff's item features do read that window (and must differ)
    assert not torch.equal(before.item_numeric, after.item_numeric)


def test_each_batch_holds_one_cutoffs_examples() -> None:
    from training.two_tower.train import _batches
    example_cutoff = np.array([0] * 10 + [1] * 3 + [2] * 7)
    batches = _batches(example_cutoff, 4, np.random.default_rng(0))
    assert all(set(example_cutoff[rows]) == {cutoff} for cutoff, rows in batches)
    # full batches only, except a cutoff with fewer rows than a batch (cutoff 1)
    assert sorted((c, len(r)) for c, r in batches) == [(0, 4), (0, 4), (1, 3), (2, 4)]


def test_training_reads_each_batchs_items_as_of_its_cutoff(prepared, monkeypatch) -> None:
    """The loop hands every batch the item features of its own cutoff (never those of the
    validation cutoff), and the item normaliser learns from the training cutoffs' values."""
    from training.two_tower import train as loop

    _, prep = prepared
    seen: list[torch.Tensor] = []
    forward = loop.TrainStep.forward

    def spy(self, user_inputs, item, categorical, item_numeric, log_q, extra_ids):
        seen.append(item_numeric)
        return forward(self, user_inputs, item, categorical, item_numeric, log_q, extra_ids)

    monkeypatch.setattr(loop.TrainStep, "forward", spy)
    result = train(prep, CFG.model_copy(update={"epochs": 1}))
    rows = {prep.train_item_numeric[j].data_ptr(): j for j in range(len(prep.cutoffs))}
    assert {rows.get(t.data_ptr()) for t in seen} == set(range(len(prep.cutoffs)))
    assert not any(torch.equal(t, prep.item_numeric) for t in seen)
    values = prep.train_item_numeric[:, 1:].reshape(-1, prep.train_item_numeric.shape[-1])
    assert torch.allclose(result.model.item.numeric.mean, values.mean(0))


def test_candidates_built_in_groups_are_the_rows_of_one_build(prepared) -> None:
    """Candidate rows are built a group of households at a time so that memory follows the
    group, not the population: every group size gives the same rows, features and ranked
    lists as one group holding every household (the group's households change no shared
    statistic: co-occurrence, EASE, popular items per product type, item statistics)."""
    from features import schema as s
    from training.two_tower.candidates import Candidates
    from training.two_tower.job import Recommender

    ds, prep = prepared
    cfg = CFG.model_copy(update={"epochs": 1, "blend_windows": 1})
    rec = Recommender(train(prep, cfg).model, prep.vocab, cfg).fit_blend(ds, prep)
    households = np.sort(prep.val_state.household_ids)
    users, items = rec.embeddings(ds, cfg.as_of, households)
    item_stats, hh_stats = rec._stats(ds, cfg.as_of)
    built = Candidates(ds, prep.vocab, cfg.as_of, items, cfg, item_stats, hh_stats)
    whole = built.frame(households, users)
    assert len(whole) > 10 * len(households)  # history and new items for each household
    assert whole[s.HOUSEHOLD_ID].nunique() == len(households)
    assert (whole["in_history"] == 0).any() and (whole["in_history"] == 1).any()
    for size in (1, 7, 64):
        groups = list(built.groups(households, users, size))
        assert len(groups) == -(-len(households) // size)
        pd.testing.assert_frame_equal(pd.concat(groups, ignore_index=True), whole)
    for exclude in (False, True):
        one = rec.rank(whole, 20, exclude)
        groups = built.groups(households, users, 7)
        by_group = pd.concat([rec.rank(g, 20, exclude) for g in groups], ignore_index=True)
        pd.testing.assert_frame_equal(by_group, one)
