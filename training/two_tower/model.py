"""The towers. Both end in L2-normalised ``dim``-vectors; scores are inner products over a
learned temperature.

User tower: household id embedding, a weighted sum of the household's history-bag item
embeddings, and standardised numeric features -> MLP. Item tower: product id embedding,
attribute embeddings (department, category, type, brand, manufacturer) and numeric
features (price, popularity) -> MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, n_out))


class Standardise(nn.Module):
    """Fixed mean/std stored in the state_dict, so a checkpoint alone rebuilds the model."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class UserTower(nn.Module):
    def __init__(self, n_households: int, n_items: int, n_numeric: int, id_dim: int,
                 hidden: int, dim: int, sparse: bool = True) -> None:
        super().__init__()
        self.household = nn.Embedding(n_households + 1, id_dim, padding_idx=0, sparse=sparse)
        self.history = nn.EmbeddingBag(n_items + 1, id_dim, mode="sum", padding_idx=0,
                                       sparse=sparse)
        self.numeric = Standardise(n_numeric)
        self.mlp = mlp(2 * id_dim + n_numeric, hidden, dim)

    def forward(self, household: torch.Tensor, history_items: torch.Tensor,
                history_weights: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        """household [B], history_items/weights [B, L], numeric [B, F] -> [B, dim], unit norm."""
        w = history_weights / history_weights.sum(1, keepdim=True).clamp_min(1e-6)
        bag = self.history(history_items, per_sample_weights=w)
        x = torch.cat([self.household(household), bag, self.numeric(numeric)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class ItemTower(nn.Module):
    def __init__(self, n_items: int, categorical_sizes: list[int], n_numeric: int,
                 id_dim: int, attr_dim: int, hidden: int, dim: int, sparse: bool = True) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, id_dim, padding_idx=0, sparse=sparse)
        self.attrs = nn.ModuleList(nn.Embedding(n, attr_dim, padding_idx=0)
                                   for n in categorical_sizes)
        self.numeric = Standardise(n_numeric)
        self.mlp = mlp(id_dim + attr_dim * len(categorical_sizes) + n_numeric, hidden, dim)

    def forward(self, item: torch.Tensor, categorical: torch.Tensor,
                numeric: torch.Tensor) -> torch.Tensor:
        """item [B], categorical [B, C], numeric [B, F] -> [B, dim], unit norm."""
        parts = [self.item(item)] + [emb(categorical[:, j]) for j, emb in enumerate(self.attrs)]
        x = torch.cat(parts + [self.numeric(numeric)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class TwoTower(nn.Module):
    def __init__(self, n_households: int, n_items: int, categorical_sizes: list[int],
                 n_user_numeric: int, n_item_numeric: int, id_dim: int = 64,
                 attr_dim: int = 16, hidden: int = 256, dim: int = 64,
                 temperature: float = 0.05, sparse: bool = True) -> None:
        super().__init__()
        self.user = UserTower(n_households, n_items, n_user_numeric, id_dim, hidden, dim,
                              sparse)
        self.item = ItemTower(n_items, categorical_sizes, n_item_numeric, id_dim, attr_dim,
                              hidden, dim, sparse)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Id tables with sparse gradients: only the rows a batch touches are updated."""
        tables = (self.user.household, self.user.history, self.item.item)
        return [t.weight for t in tables if t.sparse]

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(1e-3, 1.0)


def in_batch_softmax_loss(user: torch.Tensor, item: torch.Tensor, item_ids: torch.Tensor,
                          temperature: torch.Tensor, log_q: torch.Tensor | None,
                          extra_item: torch.Tensor | None = None,
                          extra_ids: torch.Tensor | None = None,
                          extra_log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Sampled softmax over the batch's items (plus optional extra negatives).

    user, item [B, D]: row i's positive is item i. ``log_q`` [B]: log probability that each
    in-batch item is sampled (popularity), subtracted so popular items are not over-punished.
    Accidental hits — another column holding row i's own product — are masked out.
    """
    logits = user @ item.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    same = item_ids[:, None] == item_ids[None, :]
    eye = torch.eye(len(item_ids), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    if extra_item is not None and extra_ids is not None:
        extra = user @ extra_item.T / temperature
        if extra_log_q is not None:
            extra = extra - extra_log_q[None, :]
        extra = extra.masked_fill(item_ids[:, None] == extra_ids[None, :], float("-inf"))
        logits = torch.cat([logits, extra], dim=1)
    target = torch.arange(len(item_ids), device=logits.device)
    return F.cross_entropy(logits, target)
