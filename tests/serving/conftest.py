"""One tiny trained world per test session: synthetic data, a two-tower, churn and coupon
champions in a session MLflow store, and two bundles in a temporary BentoML store — one
built before the propensity models had champions (their endpoints answer 503), one with
everything. Serving tests share it, so the whole folder runs in a few minutes on 2 cores."""

from __future__ import annotations

import os
import shutil
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


# Campaigns added to a copy of the world's data, starting before its first day as the embedded
# data's 24 (12 recipients) and 25 do: id -> (start, end, recipients).
BEFORE_DATA = {24: (date(2016, 11, 14), date(2017, 1, 16), 12),
               25: (date(2016, 12, 6), date(2017, 2, 5), 0)}


@dataclass(frozen=True)
class EarlyBundle:
    """A bundle of the world's champions on its data plus the ``BEFORE_DATA`` campaigns."""

    tag: str
    manifest: dict
    data_start: date  # the data's first transaction day
    path: Path


def before_data_error(early: EarlyBundle, campaign: int) -> str:
    """What the service says of ``campaign``, one of ``BEFORE_DATA``, on ``early``: its start,
    the data's first day, why it is not scored and the campaigns that are."""
    import pandas as pd

    scored = sorted(pd.read_parquet(early.path / "coupon" / "features.parquet",
                                    columns=["campaign_id"])["campaign_id"].unique().tolist())
    return (f"campaign {campaign} starts on {BEFORE_DATA[campaign][0]}, before the data's "
            f"first day {early.data_start}: no household has any purchase history before "
            "its start, so its scores would carry no information and it is not scored; "
            f"campaigns that can be asked for: {scored}")


@pytest.fixture(scope="session")
def early_bundle(world: World, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[EarlyBundle]:
    """``growth bundle`` of the world's champions on a copy of its data to which the
    ``BEFORE_DATA`` campaigns are added (the copy keeps the world's source name, so the
    champions trained on the world's data are bundled); removed from the store afterwards."""
    import dataclasses

    import bentoml
    import pandas as pd

    from features import schema as s
    from features.dataset import load_dataset
    from features.sources import describe_source
    from serving.bundle import build_bundle
    from serving.config import load_serving_config

    root = tmp_path_factory.mktemp("early")
    data = shutil.copytree(world.data, root / "data")
    households = pd.read_parquet(data / f"{s.TRANSACTIONS}.parquet")[s.HOUSEHOLD_ID]
    recipients = sorted(households.unique())
    for table, rows in (
            (s.CAMPAIGN_DESCRIPTIONS, pd.DataFrame({
                s.CAMPAIGN_ID: list(BEFORE_DATA), s.CAMPAIGN_TYPE: "Type C",
                s.START_DATE: [pd.Timestamp(v[0]) for v in BEFORE_DATA.values()],
                s.END_DATE: [pd.Timestamp(v[1]) for v in BEFORE_DATA.values()]})),
            (s.CAMPAIGNS, pd.DataFrame({
                s.HOUSEHOLD_ID: [h for v in BEFORE_DATA.values() for h in recipients[:v[2]]],
                s.CAMPAIGN_ID: [c for c, v in BEFORE_DATA.items() for _ in range(v[2])]}))):
        file = data / f"{table}.parquet"
        old = pd.read_parquet(file)
        pd.concat([old, rows.astype(old.dtypes.to_dict())], ignore_index=True).to_parquet(
            file, index=False)
    ds = dataclasses.replace(load_dataset(data, quarantine_dir=root / "quarantine"),
                             source=describe_source(world.data))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", world.mlflow_uri)
            manifest = build_bundle(ds, load_serving_config())
        first = ds.time_range()[0].date()
    finally:
        ds.con.close()
    stored = bentoml.models.get(manifest["tag"])
    yield EarlyBundle(manifest["tag"], manifest, first, Path(stored.path))
    bentoml.models.delete(manifest["tag"])


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
