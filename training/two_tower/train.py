"""The two-tower training loop: in-batch sampled softmax with logQ correction, early stopping
on validation recall@20, a checkpoint each epoch and ``--resume`` after a crash.

Runs as one process, or under ``torchrun --nproc_per_node=N`` (DistributedDataParallel,
gloo on CPU): each rank takes its own shard of every epoch's batches.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.progress import Progress

from features.dataset import Dataset
from features.sources import GrowthError
from training.metrics import recall_at_k
from training.two_tower.config import TwoTowerConfig
from training.two_tower.data import (
    ITEM_NUMERIC,
    USER_NUMERIC,
    CutoffExamples,
    UserState,
    Vocab,
    build_vocab,
    cutoff_examples,
    item_numeric,
    purchased_before,
    user_state,
    window_targets,
)
from training.two_tower.model import TwoTower, in_batch_softmax_loss

CHECKPOINT = "checkpoint.pt"


@dataclass
class Prepared:
    """Everything the loop needs, built from rows before the validation cutoff (plus the
    validation window's targets)."""

    vocab: Vocab
    item_numeric: torch.Tensor  # [n_items + 1, F] as of the validation cutoff
    # [n_cutoffs, n_items + 1, F]: row j as of cutoffs[j], what that cutoff's examples read
    train_item_numeric: torch.Tensor
    users: UserState  # all training cutoffs' households, stacked
    user_row: np.ndarray  # [m] per example
    item: np.ndarray  # [m] per example
    example_cutoff: np.ndarray  # [m] index into cutoffs
    val_state: UserState
    val_targets: dict[int, set[int]]  # household -> item indices
    val_exclude: list[np.ndarray] | None  # per validation household: items not to rank
    cutoffs: list[date]
    val_cutoff: date


def _stack(states: list[UserState]) -> UserState:
    return UserState(*(np.concatenate([getattr(st, f) for st in states])
                       for f in ("household_ids", "history_items", "history_weights",
                                 "numeric")))


def check_history(ds: Dataset, cfg: TwoTowerConfig, test_window: bool = False) -> None:
    """Raise :class:`GrowthError` unless the data spans what a two-tower as of ``cfg.as_of``
    reads: ``window_days * (n_cutoffs + 1)`` days before ``as_of`` (the training windows and
    the validation window) and, with ``test_window``, lines from ``as_of`` on (evaluation)."""
    first, last = (ts.date() for ts in ds.time_range())
    needed = cfg.window_days * (cfg.n_cutoffs + 1)
    if (cfg.as_of - first).days < needed or (test_window and last < cfg.as_of):
        raise GrowthError(
            f"not enough history for the two-tower as of {cfg.as_of}: it needs {needed} days "
            f"of data before it (window_days {cfg.window_days} x (n_cutoffs {cfg.n_cutoffs} "
            f"+ 1)){' and a test window from it on' if test_window else ''}; {ds.source} "
            f"covers {first} to {last}")


def prepare(ds: Dataset, cfg: TwoTowerConfig) -> Prepared:
    """Vocabulary, training examples from ``n_cutoffs`` past windows, validation window.
    Raises :class:`GrowthError` when the data is too short (:func:`check_history`) or its
    windows hold no examples."""
    check_history(ds, cfg)
    first, last = ds.time_range()
    val_cutoff = cfg.as_of - timedelta(days=cfg.window_days)
    cutoffs = [val_cutoff - timedelta(days=cfg.window_days * j)
               for j in range(1, cfg.n_cutoffs + 1)]
    cutoffs = [c for c in cutoffs if c >= first.date() + timedelta(days=cfg.window_days)]
    vocab = build_vocab(ds, cfg.as_of, cfg.catalog_weeks)
    parts: list[CutoffExamples] = [
        cutoff_examples(ds, vocab, c, cfg.window_days, cfg.history_len,
                        cfg.history_half_life_days, cfg.new_items_only) for c in cutoffs]
    offsets = np.cumsum([0] + [len(p.state.household_ids) for p in parts])
    val = window_targets(ds, val_cutoff, cfg.window_days, cfg.new_items_only)
    val = val.assign(item=vocab.item_index(val.iloc[:, 1].to_numpy()))
    val_households = np.unique(val.iloc[:, 0].to_numpy())
    examples = sum(len(p.item) for p in parts)
    if not examples or not len(val_households):
        raise GrowthError(
            f"not enough history for the two-tower as of {cfg.as_of}: its training windows "
            f"from {cutoffs[-1]} to {val_cutoff} hold {examples:,} examples and its "
            f"validation window from {val_cutoff} {len(val_households):,} households (a "
            f"household that bought before a window and bought{' new' * cfg.new_items_only}"
            f" products in it); it needs both; {ds.source} covers {first.date()} to "
            f"{last.date()}")
    val_state = user_state(ds, vocab, val_cutoff, val_households, cfg.history_len,
                           cfg.history_half_life_days)
    val_exclude = (purchased_before(ds, vocab, val_cutoff, val_households)
                   if cfg.new_items_only else None)
    return Prepared(
        vocab=vocab,
        item_numeric=torch.from_numpy(item_numeric(ds, vocab, val_cutoff)),
        # an example's items are read as of its own cutoff: popularity as of the validation
        # cutoff would count the purchases that are the example's target
        train_item_numeric=torch.from_numpy(np.stack([item_numeric(ds, vocab, c)
                                                      for c in cutoffs])),
        users=_stack([p.state for p in parts]),
        user_row=np.concatenate([p.user_row + o for p, o in zip(parts, offsets, strict=False)]),
        item=np.concatenate([p.item for p in parts]),
        example_cutoff=np.concatenate([np.full(len(p.item), j) for j, p in enumerate(parts)]),
        val_state=val_state,
        val_targets={int(h): set(g.tolist()) for h, g in
                     val[val["item"] > 0].groupby(val.columns[0])["item"]},
        val_exclude=val_exclude,
        cutoffs=cutoffs,
        val_cutoff=val_cutoff,
    )


def build_model(vocab: Vocab, cfg: TwoTowerConfig, sparse: bool = True) -> TwoTower:
    return TwoTower(len(vocab.household_ids), vocab.n_items, vocab.categorical_sizes,
                    len(USER_NUMERIC), len(ITEM_NUMERIC), id_dim=cfg.id_dim,
                    attr_dim=cfg.attr_dim, hidden=cfg.hidden, dim=cfg.dim,
                    temperature=cfg.temperature, sparse=sparse)


class Optimizer:
    """SparseAdam for the id tables (dense Adam over 60k-row tables dominated the step
    time), Adam for everything else; one state_dict for checkpoints."""

    def __init__(self, model: TwoTower, lr: float, weight_decay: float) -> None:
        sparse = model.sparse_parameters()
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse_ids]
        self.parts = [torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay)]
        if sparse:
            self.parts.append(torch.optim.SparseAdam(sparse, lr=lr))

    def zero_grad(self) -> None:
        for opt in self.parts:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.parts:
            opt.step()

    def state_dict(self) -> dict:
        return {str(i): opt.state_dict() for i, opt in enumerate(self.parts)}

    def load_state_dict(self, state: dict) -> None:
        for i, opt in enumerate(self.parts):
            opt.load_state_dict(state[str(i)])


def _user_tensors(vocab: Vocab, state: UserState, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(vocab.household_index(state.household_ids[rows])),
            torch.from_numpy(state.history_items[rows]),
            torch.from_numpy(state.history_weights[rows]),
            torch.from_numpy(state.numeric[rows]))


@torch.no_grad()
def embed_users(model: TwoTower, vocab: Vocab, state: UserState,
                batch: int = 4096) -> np.ndarray:
    """[n_households_in_state, dim] user embeddings."""
    model.eval()
    out = [model.user(*_user_tensors(vocab, state, np.arange(i, min(i + batch,
                                                                   len(state.household_ids)))))
           for i in range(0, len(state.household_ids), batch)]
    return torch.cat(out).numpy()


@torch.no_grad()
def embed_items(model: TwoTower, vocab: Vocab, numeric: torch.Tensor) -> np.ndarray:
    """[n_items, dim] item embeddings (row i is product ``vocab.product_ids[i]``)."""
    model.eval()
    idx = torch.arange(1, vocab.n_items + 1)
    return model.item(idx, torch.from_numpy(vocab.item_categorical[1:]), numeric[1:]).numpy()


def top_items(user_emb: np.ndarray, item_emb: np.ndarray, k: int,
              exclude: list[np.ndarray] | None = None,
              batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: ([n, k] item positions (0-based), [n, k] scores);
    ``exclude[u]`` lists item positions user ``u`` must not get."""
    idx_out, score_out = [], []
    items_t = torch.from_numpy(item_emb)
    for i in range(0, len(user_emb), batch):
        scores = torch.from_numpy(user_emb[i:i + batch]) @ items_t.T
        if exclude is not None:
            for r, banned in enumerate(exclude[i:i + batch]):
                scores[r, torch.tensor(banned, dtype=torch.long)] = float("-inf")
        top = torch.topk(scores, k, dim=1)
        idx_out.append(top.indices.numpy())
        score_out.append(top.values.numpy())
    return np.concatenate(idx_out), np.concatenate(score_out)


def validation_recall(model: TwoTower, prep: Prepared, k: int = 20) -> float:
    users = embed_users(model, prep.vocab, prep.val_state)
    items = embed_items(model, prep.vocab, prep.item_numeric)
    top, _ = top_items(users, items, k, prep.val_exclude)
    recs = {int(h): (top[i] + 1).tolist() for i, h in enumerate(prep.val_state.household_ids)}
    return recall_at_k(recs, prep.val_targets, k)


class TrainStep(torch.nn.Module):
    """One batch's loss as a module, so DistributedDataParallel can wrap the whole step."""

    def __init__(self, model: TwoTower, logq_correction: bool) -> None:
        super().__init__()
        self.model = model
        self.logq_correction = logq_correction

    def forward(self, user_inputs: tuple[torch.Tensor, ...], item: torch.Tensor,
                categorical: torch.Tensor, item_numeric: torch.Tensor, log_q: torch.Tensor,
                extra_ids: torch.Tensor | None) -> torch.Tensor:
        m = self.model
        user_emb = m.user(*user_inputs)
        item_emb = m.item(item, categorical[item], item_numeric[item])
        extra = None
        if extra_ids is not None:
            extra = m.item(extra_ids, categorical[extra_ids], item_numeric[extra_ids])
        return in_batch_softmax_loss(user_emb, item_emb, item, m.temperature,
                                     log_q[item] if self.logq_correction else None, extra,
                                     extra_ids, log_q[extra_ids] if extra_ids is not None
                                     and self.logq_correction else None)


@dataclass
class TrainResult:
    model: TwoTower
    prepared: Prepared
    best_epoch: int
    best_val_recall: float
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val_recall, seconds
    seconds: float = 0.0


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batches(example_cutoff: np.ndarray, size: int,
             rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches as (cutoff index, example rows): each batch holds examples of one
    cutoff, so its positives and in-batch negatives are read as of the same day; rows are
    shuffled within each cutoff and the batches across cutoffs. A cutoff's last partial
    batch is left out (a different one each epoch), unless it is the cutoff's only one."""
    batches = []
    for cutoff in np.unique(example_cutoff):
        rows = rng.permutation(np.flatnonzero(example_cutoff == cutoff))
        batches += [(int(cutoff), rows[i:i + size])
                    for i in range(0, max(len(rows) - size + 1, 1), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train(prep: Prepared, cfg: TwoTowerConfig, checkpoint_dir: Path | None = None,
          resume: bool = False, on_epoch=None) -> TrainResult:
    """Train with early stopping; with ``checkpoint_dir`` save each epoch, and with
    ``resume`` continue from the last saved epoch."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rank, world = _distributed()
    # DDP all-reduces dense gradients only, so distributed runs use dense id tables
    model = build_model(prep.vocab, cfg, sparse=world == 1)
    model.user.numeric.fit(torch.from_numpy(prep.users.numeric))
    model.item.numeric.fit(prep.train_item_numeric[:, 1:].reshape(
        -1, prep.train_item_numeric.shape[-1]))
    step_fn: torch.nn.Module = TrainStep(model, cfg.logq_correction)
    if world > 1:
        step_fn = torch.nn.parallel.DistributedDataParallel(step_fn)
    opt = Optimizer(model, cfg.lr, cfg.weight_decay)
    counts = np.bincount(prep.item, minlength=prep.vocab.n_items + 1).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32))
    categorical = torch.from_numpy(prep.vocab.item_categorical)
    state = {"epoch": 0, "best_epoch": 0, "best_val_recall": -1.0, "history": [],
             "best_model": None, "bad_epochs": 0}
    ckpt = checkpoint_dir / CHECKPOINT if checkpoint_dir else None
    if resume and ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state.update({k: saved[k] for k in state})
    started = time.perf_counter()
    per_cutoff = np.bincount(prep.example_cutoff)
    steps = int(np.maximum(per_cutoff[per_cutoff > 0] // cfg.batch_size, 1).sum())
    with Progress(disable=rank != 0 or not os.isatty(1), transient=True) as progress:
        while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
            epoch = state["epoch"]
            t0 = time.perf_counter()
            batches = _batches(prep.example_cutoff, cfg.batch_size,
                               np.random.default_rng([cfg.seed, epoch]))
            task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps)
            model.train()
            losses = []
            # every rank takes the same number of batches, so the all-reduces pair up
            for step in range(rank, steps - steps % world, world):
                cutoff, rows = batches[step]
                item = torch.from_numpy(prep.item[rows])
                extra_ids = None
                if cfg.random_negatives:
                    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 10_007
                                                        + step)
                    extra_ids = torch.randint(1, prep.vocab.n_items + 1,
                                              (cfg.random_negatives,), generator=gen)
                loss = step_fn(_user_tensors(prep.vocab, prep.users, prep.user_row[rows]),
                               item, categorical, prep.train_item_numeric[cutoff], log_q,
                               extra_ids)
                opt.zero_grad()
                loss.backward()  # under DDP this also averages gradients across ranks
                opt.step()
                losses.append(loss.item())
                progress.advance(task)
            progress.remove_task(task)
            val = validation_recall(model, prep) if rank == 0 else 0.0
            if world > 1:  # every rank must take the same early-stopping decision
                shared = torch.tensor([val], dtype=torch.float64)
                dist.broadcast(shared, src=0)
                val = float(shared.item())
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else 0.0,
                      "val_recall_at_20": val, "seconds": time.perf_counter() - t0}
            state["history"].append(record)
            if val > state["best_val_recall"]:
                state.update(best_val_recall=val, best_epoch=epoch + 1, bad_epochs=0,
                             best_model={k: v.clone() for k, v in model.state_dict().items()})
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            if ckpt is not None and rank == 0:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                tmp = ckpt.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            **state}, tmp)
                os.replace(tmp, ckpt)  # atomic: a kill never leaves half a checkpoint
            if on_epoch is not None:
                on_epoch(record)
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    return TrainResult(model, prep, state["best_epoch"], state["best_val_recall"],
                       state["history"], time.perf_counter() - started)
