"""One tiny trained world per test session: synthetic data, a two-tower, churn and coupon
champions in a session MLflow store, and two bundles in a temporary BentoML store — one
built before the propensity models had champions (their endpoints answer 503), one with
everything. Serving tests share it, so the whole folder runs in a few minutes on 2 cores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from features.synth import generate
from tests.training.test_two_tower_cli import SMALL

CHURN = ["as_of=2017-05-01", "horizon_days=28", "n_cutoffs=4", "step_days=14",
         "max_rounds=40"]
COUPON = ["split_date=2017-03-20", "validation_days=40", "max_rounds=40"]


@dataclass(frozen=True)
class World:
    data: Path
    mlflow_uri: str
    bentoml_home: Path
    partial_tag: str  # two_tower only: churn and coupon missing
    tag: str  # every model
    as_of: date

    @property
    def bundle_path(self) -> Path:
        name, version = self.tag.split(":")
        return self.bentoml_home / "models" / name / version

    def indexed_products(self, n: int) -> list[int]:
        """``n`` products of the bundle's FAISS index."""
        import numpy as np

        with np.load(self.bundle_path / "two_tower" / "item_embeddings.npz") as z:
            return z["product_ids"][:n].tolist()


def _train_and_promote(train, name: str, *args) -> None:
    from training import registry

    summary = train(*args)
    if not summary["promoted"]:  # tiny data: the gate may prefer a baseline; serve it anyway
        registry.promote(name, summary["version"])


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("serving")
    data = root / "data"
    generate(data, households=300, products=400, weeks=24, seed=5)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("BENTOML_HOME", str(root / "bentoml"))
        mp.chdir(root)  # reports/, quarantine/ and checkpoints stay out of the repository
        from bentoml._internal.configuration.containers import BentoMLContainer

        assert BentoMLContainer.model_store_dir.get().startswith(str(root)), (
            "BentoML's store was resolved before the serving tests set BENTOML_HOME")
        from features.dataset import load_dataset
        from serving.bundle import build_bundle
        from serving.config import load_serving_config
        from training.propensity.config import load_churn_config, load_coupon_config
        from training.propensity.run import train_churn, train_coupon
        from training.two_tower.config import load_two_tower_config
        from training.two_tower.run import train_two_tower

        ds = load_dataset(data)
        cfg = load_serving_config()
        train_two_tower(ds, load_two_tower_config(overrides=SMALL), root / "ckpt",
                        root / "reports" / "two_tower")
        partial = build_bundle(ds, cfg)
        _train_and_promote(train_churn, "churn", ds, load_churn_config(overrides=CHURN),
                           root / "reports" / "churn")
        _train_and_promote(train_coupon, "coupon", ds, load_coupon_config(overrides=COUPON),
                           root / "reports" / "coupon")
        full = build_bundle(ds, cfg)
        ds.con.close()
    before = {k: os.environ.get(k) for k in ("BENTOML_HOME", "GROWTH_BUNDLE")}
    os.environ["BENTOML_HOME"] = str(root / "bentoml")  # BentoML resolved its store here
    yield World(data, uri, root / "bentoml", partial["tag"], full["tag"],
                date.fromisoformat(full["as_of"]))
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def service_app(world: World):
    """The service's ASGI app on the full bundle (the service module reads its settings at
    import, so it is imported only once BENTOML_HOME points at the test store)."""
    os.environ["GROWTH_BUNDLE"] = world.tag
    from serving.service import GrowthService

    return GrowthService.to_asgi()


@pytest.fixture(scope="module")
def client(service_app) -> Iterator:
    from starlette.testclient import TestClient

    with TestClient(service_app) as c:
        yield c
