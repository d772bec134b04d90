from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.retrieval import INDEX_FILE, META_FILE, IndexConfig, ItemIndex, recall_against_exact

REPO = Path(__file__).resolve().parents[2]
N_ITEMS, DIM, K = 2_000, 32, 20


def normalised(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def items() -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [N_ITEMS, DIM] float32, product ids [N_ITEMS] int64, shuffled and sparse)."""
    ids = np.random.default_rng(1).permutation(10 * N_ITEMS)[:N_ITEMS].astype(np.int64) + 100
    return normalised(N_ITEMS, seed=0), ids


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return normalised(200, seed=2)


@pytest.fixture(scope="module")
def flat(items: tuple[np.ndarray, np.ndarray]) -> ItemIndex:
    return ItemIndex.build(*items, model_version="v1")


def test_flat_matches_brute_force(flat: ItemIndex, items, queries: np.ndarray) -> None:
    embeddings, ids = items
    assert (flat.kind, flat.n_items, flat.dim) == ("flat", N_ITEMS, DIM)
    scores, found = flat.search(queries, K)
    assert scores.shape == found.shape == (len(queries), K)
    assert scores.dtype == np.float32 and found.dtype == np.int64
    brute = queries @ embeddings.T
    order = np.argsort(-brute, axis=1)[:, :K]
    np.testing.assert_array_equal(found, ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(brute, order, axis=1), atol=1e-5)
    assert recall_against_exact(flat, embeddings, queries, K) == 1.0


def test_float64_embeddings_are_cast(items, queries: np.ndarray) -> None:
    embeddings, ids = items
    index = ItemIndex.build(embeddings.astype(np.float64), ids)
    np.testing.assert_array_equal(index.search(queries, K)[1],
                                  ItemIndex.build(embeddings, ids).search(queries, K)[1])


def test_save_load_in_fresh_process_without_torch(flat: ItemIndex, queries: np.ndarray,
                                                  tmp_path: Path) -> None:
    flat.save(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [META_FILE, INDEX_FILE]
    np.save(tmp_path / "queries.npy", queries)
    script = f"""
import sys
import numpy as np
from training.retrieval import ItemIndex
index = ItemIndex.load({str(tmp_path / "index")!r})
assert (index.kind, index.model_version) == ("flat", "v1"), (index.kind, index.model_version)
scores, ids = index.search(np.load({str(tmp_path / "queries.npy")!r}), {K})
np.save({str(tmp_path / "scores.npy")!r}, scores)
np.save({str(tmp_path / "ids.npy")!r}, ids)
assert "torch" not in sys.modules, "loading the index imported torch"
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    scores, ids = flat.search(queries, K)
    np.testing.assert_array_equal(np.load(tmp_path / "ids.npy"), ids)
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), scores)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_save_load_round_trip(kind: str, items, queries: np.ndarray,
                                          tmp_path: Path) -> None:
    config = IndexConfig(kind=kind, ivf_nlist=16, ivf_nprobe=8, hnsw_ef_search=64)
    index = ItemIndex.build(*items, config=config, model_version="v2")
    index.save(tmp_path)
    loaded = ItemIndex.load(tmp_path)
    assert (loaded.kind, loaded.model_version, loaded.config) == (kind, "v2", config)
    np.testing.assert_array_equal(loaded.product_ids, items[1])
    for got, expected in zip(loaded.search(queries, K), index.search(queries, K), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_corrupt_index_file_names_the_file(flat: ItemIndex, tmp_path: Path) -> None:
    flat.save(tmp_path)
    path = tmp_path / INDEX_FILE
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
    middle = len(data) // 2
    data[middle:middle + 8] ^= 0xFF
    path.write_bytes(data.tobytes())
    with pytest.raises(ValueError, match=r"corrupt.*items\.faiss"):
        ItemIndex.load(tmp_path)


def test_corrupt_metadata_names_the_file(flat: ItemIndex, tmp_path: Path) -> None:
    flat.save(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"index\.json"):
        ItemIndex.load(tmp_path)


@pytest.mark.parametrize("name", [INDEX_FILE, META_FILE])
def test_missing_file(name: str, flat: ItemIndex, tmp_path: Path) -> None:
    flat.save(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(ValueError, match=f"missing.*{name.replace('.', r'.')}"):
        ItemIndex.load(tmp_path)


def test_ivf_recall(items, queries: np.ndarray) -> None:
    embeddings, ids = items
    config = IndexConfig(kind="ivf", ivf_nlist=16, ivf_nprobe=12)
    index = ItemIndex.build(embeddings, ids, config=config)
    assert index.kind == "ivf"
    assert recall_against_exact(index, embeddings, queries, K) >= 0.9
    # probing every cell is exhaustive
    full = ItemIndex.build(embeddings, ids, config=IndexConfig(kind="ivf", ivf_nlist=16,
                                                               ivf_nprobe=16))
    assert recall_against_exact(full, embeddings, queries, K) == pytest.approx(1.0)


def test_auto_switches_to_ivf_above_exact_max(items) -> None:
    config = IndexConfig(exact_max_items=N_ITEMS - 1, ivf_nlist=16)
    assert ItemIndex.build(*items, config=config).kind == "ivf"
    assert ItemIndex.build(*items, config=IndexConfig(exact_max_items=N_ITEMS)).kind == "flat"


def test_hnsw_recall(items, queries: np.ndarray) -> None:
    embeddings, ids = items
    index = ItemIndex.build(embeddings, ids, config=IndexConfig(kind="hnsw"))
    assert index.kind == "hnsw"
    assert recall_against_exact(index, embeddings, queries, K) >= 0.9


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_deterministic(kind: str, items, queries: np.ndarray) -> None:
    config = IndexConfig(kind=kind, ivf_nlist=16, ivf_nprobe=2, hnsw_ef_search=16, seed=3)
    first, second = (ItemIndex.build(*items, config=config).search(queries, K) for _ in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_k_above_n_items_pads() -> None:
    index = ItemIndex.build(normalised(5, seed=4), np.arange(5) + 10)
    scores, ids = index.search(normalised(3, seed=5), 8)
    assert ids.shape == (3, 8)
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert all(sorted(row[:5]) == list(range(10, 15)) for row in ids.tolist())
    assert recall_against_exact(index, normalised(5, seed=4), normalised(3, seed=5), 8) == 1.0


def test_bad_inputs(flat: ItemIndex, items) -> None:
    embeddings, ids = items
    with pytest.raises(ValueError, match="dim 32"):
        flat.search(normalised(2, seed=6)[:, :16], K)
    with pytest.raises(ValueError, match="k must be at least 1"):
        flat.search(normalised(2, seed=6), 0)
    with pytest.raises(ValueError, match="unique"):
        ItemIndex.build(embeddings, np.concatenate([ids[:-1], ids[:1]]))
    nan = embeddings.copy()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ItemIndex.build(nan, ids)
    with pytest.raises(ValueError, match="one id per embedding row"):
        ItemIndex.build(embeddings, ids[:-1])
    with pytest.raises(ValueError, match="2-D"):
        ItemIndex.build(embeddings[0], ids[:1])
    with pytest.raises(ValueError, match="float32"):
        ItemIndex.build(embeddings.astype(np.float16), ids)
    with pytest.raises(ValueError, match="integers"):
        ItemIndex.build(embeddings, ids.astype(np.float64))
    with pytest.raises(ValueError, match="non-negative"):
        ItemIndex.build(embeddings, ids - 1_000_000)
    with pytest.raises(ValueError, match="nlist"):
        ItemIndex.build(embeddings[:10], ids[:10], config=IndexConfig(kind="ivf", ivf_nlist=50))
    with pytest.raises(ValueError, match="kind must be one of"):
        IndexConfig(kind="annoy")
