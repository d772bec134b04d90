"""Item-embedding index for two-tower retrieval, stored in FAISS's own file format.

One index holds exactly one model version's item embeddings. Scores are inner products of
L2-normalised vectors (cosine similarity); ids are product ids (int64) kept inside the index
by an ``IndexIDMap2``. Loading needs only faiss and numpy, never the training code or torch.

On disk (``ItemIndex.save``): ``items.faiss`` written by ``faiss.write_index`` and
``index.json`` with kind, n_items, dim, model_version, config and the sha256 of items.faiss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

INDEX_FILE = "items.faiss"
META_FILE = "index.json"
FORMAT_VERSION = 1
KINDS = ("auto", "flat", "ivf", "hnsw")


@dataclass
class IndexConfig:
    """How to index: exact below ``exact_max_items`` items, approximate (IVF) above."""

    exact_max_items: int = 200_000  # at or below: exact inner product (IndexFlatIP)
    kind: str = "auto"  # "auto" | "flat" | "ivf" | "hnsw"
    ivf_nlist: int | None = None  # default ~ 4 * sqrt(n_items)
    ivf_nprobe: int = 32
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"IndexConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("ivf_nprobe", "hnsw_m", "hnsw_ef_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"IndexConfig.{name} must be at least 1, "
                                 f"got {getattr(self, name)}")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise ValueError(f"IndexConfig.ivf_nlist must be at least 1 or None, "
                             f"got {self.ivf_nlist}")

    def resolve_kind(self, n_items: int) -> str:
        """The concrete kind ("flat", "ivf" or "hnsw") for a catalogue of ``n_items``."""
        if self.kind != "auto":
            return self.kind
        return "flat" if n_items <= self.exact_max_items else "ivf"

    def nlist(self, n_items: int) -> int:
        """IVF cell count: ``ivf_nlist`` or ~4 * sqrt(n_items), never more than n_items."""
        nlist = self.ivf_nlist or max(1, round(4 * math.sqrt(n_items)))
        if nlist > n_items:
            raise ValueError(f"IVF needs ivf_nlist <= n_items, got nlist={nlist} "
                             f"for {n_items} items")
        return nlist


def _check_embeddings(embeddings: np.ndarray, name: str) -> np.ndarray:
    """[n, d] float32/float64 finite array -> C-contiguous float32 [n, d]."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, dim], got shape {embeddings.shape}")
    if embeddings.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 (or float64, cast to float32), "
                         f"got {embeddings.dtype}")
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if not np.isfinite(embeddings).all():
        raise ValueError(f"{name} must be finite, found NaN or inf "
                         f"in {int((~np.isfinite(embeddings)).any(axis=1).sum())} rows")
    return embeddings


def _check_product_ids(product_ids: np.ndarray, n_items: int) -> np.ndarray:
    """Unique non-negative integer ids [n_items] -> int64 [n_items]."""
    product_ids = np.asarray(product_ids)
    if product_ids.ndim != 1 or len(product_ids) != n_items:
        raise ValueError(f"product_ids must be 1-D with one id per embedding row ({n_items}), "
                         f"got shape {product_ids.shape}")
    if not np.issubdtype(product_ids.dtype, np.integer):
        raise ValueError(f"product_ids must be integers (int64), got {product_ids.dtype}")
    product_ids = product_ids.astype(np.int64)
    if (product_ids < 0).any():
        raise ValueError("product_ids must be non-negative (-1 marks padding in results)")
    unique, counts = np.unique(product_ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"product_ids must be unique, found {int((counts > 1).sum())} "
                         f"duplicated, e.g. {unique[counts > 1][:5].tolist()}")
    return product_ids


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ItemIndex:
    """FAISS index over L2-normalised item embeddings; ids are the product ids (int64)."""

    def __init__(self, index: faiss.IndexIDMap2, product_ids: np.ndarray, kind: str,
                 model_version: str | None, config: IndexConfig | None = None) -> None:
        self._index = index
        self._product_ids = np.asarray(product_ids, dtype=np.int64)
        self._kind = kind
        self.model_version = model_version
        self.config = config or IndexConfig()

    @classmethod
    def build(cls, embeddings: np.ndarray, product_ids: np.ndarray,
              config: IndexConfig | None = None,
              model_version: str | None = None) -> ItemIndex:
        """Index ``embeddings`` [n, d] (already L2-normalised) under ``product_ids`` [n].

        Not renormalised here. Deterministic: same inputs and ``config.seed`` give the same
        index (HNSW items are added one by one, since FAISS's parallel HNSW insert is not).
        """
        config = config or IndexConfig()
        embeddings = _check_embeddings(embeddings, "embeddings")
        n_items, dim = embeddings.shape
        if n_items == 0:
            raise ValueError("embeddings must contain at least one item")
        product_ids = _check_product_ids(product_ids, n_items)
        kind = config.resolve_kind(n_items)
        if kind == "flat":
            base = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            nlist = config.nlist(n_items)
            base = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist,
                                      faiss.METRIC_INNER_PRODUCT)
            base.cp.seed = config.seed
            base.train(embeddings)
            base.nprobe = min(config.ivf_nprobe, nlist)
        else:
            base = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efSearch = config.hnsw_ef_search
        index = faiss.IndexIDMap2(base)
        if kind == "hnsw":
            for i in range(n_items):
                index.add_with_ids(embeddings[i:i + 1], product_ids[i:i + 1])
        else:
            index.add_with_ids(embeddings, product_ids)
        return cls(index, product_ids, kind, model_version, config)

    @property
    def n_items(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def product_ids(self) -> np.ndarray:
        """Indexed product ids [n_items] int64, in insertion order (a copy)."""
        return self._product_ids.copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items by inner product for ``queries`` [n, dim].

        Returns (scores [n, k] float32, product_ids [n, k] int64), best first; slots beyond
        the items found (e.g. k > n_items) hold id -1 and score -inf.
        """
        queries = _check_embeddings(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries must have dim {self.dim} (the index's), "
                             f"got shape {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores, ids = self._index.search(queries, k)
        scores[ids == -1] = -np.inf
        return scores, ids

    def save(self, folder: Path) -> None:
        """Write ``folder/items.faiss`` and ``folder/index.json`` (metadata + sha256)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(folder / INDEX_FILE))
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "n_items": self.n_items,
            "dim": self.dim,
            "model_version": self.model_version,
            "config": dataclasses.asdict(self.config),
            "sha256": _sha256(folder / INDEX_FILE),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> ItemIndex:
        """Read an index written by ``save``, verifying the checksum, n_items and dim.

        Raises ValueError naming the file when a file is missing, corrupt or inconsistent.
        """
        folder = Path(folder)
        meta_path, index_path = folder / META_FILE, folder / INDEX_FILE
        for path in (meta_path, index_path):
            if not path.is_file():
                raise ValueError(f"item index file missing: {path}")
        try:
            meta = json.loads(meta_path.read_text())
            config = IndexConfig(**meta["config"])
            kind, sha256 = meta["kind"], meta["sha256"]
            n_items, dim = int(meta["n_items"]), int(meta["dim"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"item index metadata is corrupt: {meta_path}: {e!r}") from e
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: unsupported format_version "
                             f"{meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        if kind not in KINDS[1:]:
            raise ValueError(f"{meta_path}: kind must be one of {KINDS[1:]}, got {kind!r}")
        actual = _sha256(index_path)
        if actual != sha256:
            raise ValueError(f"item index file is corrupt or was modified: {index_path} "
                             f"(sha256 {actual}, {meta_path.name} expects {sha256})")
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as e:
            raise ValueError(f"item index file could not be read: {index_path}: {e}") from e
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{index_path}: expected an IndexIDMap2, "
                             f"got {type(index).__name__}")
        if (int(index.ntotal), int(index.d)) != (n_items, dim):
            raise ValueError(f"{index_path} holds {index.ntotal} items of dim {index.d}, "
                             f"{meta_path.name} says {n_items} of dim {dim}")
        product_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        return cls(index, product_ids, kind, meta.get("model_version"), config)


def recall_against_exact(index: ItemIndex, embeddings: np.ndarray, queries: np.ndarray,
                         k: int = 20) -> float:
    """Mean overlap of the index's top-k with exact inner-product top-k (1.0 for flat).

    ``embeddings`` [n_items, dim] are the indexed item vectors, row i for
    ``index.product_ids[i]``; ``queries`` [n, dim]. Overlap is over min(k, n_items) items.
    """
    if np.shape(embeddings) != (index.n_items, index.dim):
        raise ValueError(f"embeddings must be the indexed items [{index.n_items}, {index.dim}], "
                         f"got shape {np.shape(embeddings)}")
    exact = ItemIndex.build(embeddings, index.product_ids, IndexConfig(kind="flat"))
    _, approx_ids = index.search(queries, k)
    _, exact_ids = exact.search(queries, k)
    found = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist()))
             for a, e in zip(approx_ids, exact_ids, strict=True)]
    return float(np.mean(found) / min(k, index.n_items))
