"""``growth bundle``: the ``@champion`` models plus an online snapshot as one BentoML model.

    growth bundle [--data DIR]

Layout of the BentoML model folder (every file in a safe format, listed with its sha256 in
``manifest.json``; BentoML's own ``model.yaml`` sits beside them):

    manifest.json     format version, as_of, model versions, missing models, file checksums
    two_tower/model/  the registered two-tower files: towers (model.pt state_dict), config,
                      vocabulary, blends (LightGBM text) and its FAISS index (index/)
    two_tower/*       the online snapshot (serving/snapshot.py)
    churn/, coupon/   the propensity boosters, calibrators and feature rows (serving/propensity.py)

A model without ``@champion``, or whose champion was trained on other data than the data
being bundled (its ``data_source`` tag), is left out and named in the manifest; its
endpoints answer 503. ``open_bundle`` verifies every checksum before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from features import schema as s
from features.dataset import Dataset
from features.sources import EMBEDDED_SOURCE, GrowthError
from serving.config import ServingConfig

MANIFEST = "manifest.json"
FORMAT_VERSION = 3  # 2: propensity rows carry their reason codes; coupon rows every
# household; 3: and the date their scores are as of (a coupon campaign's start)
TWO_TOWER = "two_tower"
PROPENSITY_MODELS = ("churn", "coupon")
# The optional tables a model is trained on: data without one cannot get a champion of that
# model, so none is suggested.
TRAINED_ON_TABLES: dict[str, tuple[str, ...]] = {"coupon": s.COUPON_TABLES}


class BundleError(GrowthError):
    """The bundle is missing, incomplete or corrupt: the service must not start on it."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle folder and its manifest."""

    path: Path
    manifest: dict[str, Any]
    tag: str

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.manifest["as_of"])

    @property
    def versions(self) -> dict[str, int]:
        return {name: m["version"] for name, m in self.manifest["models"].items()}

    def has(self, model: str) -> bool:
        return model in self.manifest["models"]

    def missing(self, model: str) -> str:
        """Why ``model`` is not in the bundle and what makes it so (for the CLI)."""
        return self.manifest["missing"].get(model, f"{model} is not in the bundle")

    def unserved(self, model: str) -> str:
        """Why ``model`` is not served, for the service's 503 answer: without the data's
        location or the remedy, which are for whoever runs ``growth bundle``, not for
        callers (a bundle written before this was recorded says only that)."""
        return self.manifest.get("unserved", {}).get(
            model, f"{model} is not in the served bundle")


def snapshot_date(ds: Dataset) -> date:
    """The day after the last transaction: the snapshot sees every line."""
    _, last = ds.time_range()
    return last.date() + timedelta(days=1)


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _champion(name: str) -> dict[str, Any] | None:
    """The registry row of ``name``'s ``@champion`` (None when there is none)."""
    from training import registry

    version = registry.champion_version(name)
    if version is None:
        return None
    row = next(r for r in registry.list_versions(name) if r["version"] == version)
    return {"version": version, "run_id": row["run_id"],
            registry.DATA_END_TAG: row[registry.DATA_END_TAG],
            registry.DATA_SOURCE_TAG: row[registry.DATA_SOURCE_TAG]}


def _not_bundled(name: str, champion: dict[str, Any] | None, source: str
                 ) -> tuple[str, str] | None:
    """Why ``name``'s champion cannot go into a bundle of the data ``source``, and the same
    without naming where data lies (for the service's answers); None if it can. A champion
    registered before sources were recorded is taken (the snapshot still checks that the
    data gives the item embeddings its index holds)."""
    from training import registry

    if champion is None:
        why = f"{name} has no @champion in the registry at bundle time"
        return why, why
    trained_on = champion[registry.DATA_SOURCE_TAG]
    if trained_on not in (None, source):
        head = f"{name} @champion v{champion['version']} was trained on"
        return f"{head} {trained_on}", f"{head} other data than the bundle's"
    return None


def _remedy(name: str, source: str) -> str:
    """What makes ``name`` bundleable for ``source``: promoting the newest version trained on
    it, when there is one (the gate never lets a version replace a champion trained on other
    data, so training again would not help), else training one."""
    from training import registry

    ours = [r["version"] for r in registry.list_versions(name)
            if r[registry.DATA_SOURCE_TAG] == source]
    if ours:
        return (f"v{max(ours)} was trained on this data: make it the champion with "
                f"`growth models promote {name} {max(ours)}`")
    return f"train {name} on this data ({source}) and make it the champion"


def _untrainable(name: str, ds: Dataset) -> str | None:
    """Why no ``name`` model can be trained on ``ds`` (tables it lacks), or None if one can."""
    lacking = [t for t in TRAINED_ON_TABLES.get(name, ()) if not ds.has(t)]
    if not lacking:
        return None
    tables = f"table{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}"
    return (f"this data ({ds.source}) has no {tables}, which {name} is trained on, so no "
            f"{name} model can be trained on it; add {'them' if len(lacking) > 1 else 'it'} "
            "(<table>.parquet or <table>.csv) to bundle one")


def _download(name: str, version: int, dest: Path) -> Path:
    import mlflow

    from training import registry

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=registry.version_artifact_uri(name, version), dst_path=str(dest))
    return Path(local)


def _export_two_tower(ds: Dataset, as_of: date, champion: dict[str, Any], folder: Path,
                      cfg: ServingConfig) -> dict[str, Any]:
    """Copy the champion's files and write the snapshot from it."""
    from serving import snapshot
    from training.retrieval import ItemIndex
    from training.two_tower import bundle as two_tower_bundle

    model_dir = _download(TWO_TOWER, champion["version"], folder / "model")
    rec = two_tower_bundle.load(model_dir)
    index = ItemIndex.load(model_dir / "index")
    if index.model_version != champion["run_id"]:
        raise BundleError(f"{TWO_TOWER} v{champion['version']}: its FAISS index was built by "
                          f"run {index.model_version}, not by the version's run "
                          f"{champion['run_id']}")
    counts = snapshot.write(folder, rec, ds, as_of, index, cfg.list_length)
    return {**counts, "index_kind": index.kind}


def bundle_command(source: str) -> str:
    """The ``growth bundle`` command for the data ``source`` names (``Dataset.source``)."""
    return "growth bundle" if source == EMBEDDED_SOURCE else f"growth bundle --data {source}"


def build_bundle(ds: Dataset, cfg: ServingConfig,
                 say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Write the champions and the snapshot as of the latest date to the BentoML store;
    returns the manifest plus ``tag``; ``say`` gets a line as each model is exported. Raises
    BundleError when no model has a champion trained on this data."""

    as_of = snapshot_date(ds)
    source = ds.source
    champions = {name: _champion(name) for name in (TWO_TOWER, *PROPENSITY_MODELS)}
    whys = {name: why for name, champion in champions.items()
            if (why := _not_bundled(name, champion, source)) is not None}
    missing = {name: _untrainable(name, ds)
               or f"{why}; {_remedy(name, source)}, then run `{bundle_command(source)}` again"
               for name, (why, _) in whys.items()}
    if len(whys) == len(champions):
        raise BundleError(f"no model has a @champion trained on this data ({source}): "
                          + "; ".join(missing.values()))
    models: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        for name, champion in champions.items():
            if name in missing:
                continue
            folder = staging / name
            started = time.perf_counter()
            say(f"bundle: exporting {name} v{champion['version']} as of {as_of} ...")
            if name == TWO_TOWER:
                summary = _export_two_tower(ds, as_of, champion, folder, cfg)
            else:
                from serving.propensity import export_propensity

                summary = export_propensity(name, ds, as_of, champion,
                                            _download(name, champion["version"],
                                                      folder / "model"), folder)
            models[name] = {**champion, **summary}
            say(f"bundle: {name} exported ({time.perf_counter() - started:.0f} s)")
        manifest = {
            "format_version": FORMAT_VERSION, "as_of": as_of.isoformat(),
            "data_source": source, "created": datetime.now(UTC).isoformat(),
            "list_length": cfg.list_length, "models": models, "missing": missing,
            "unserved": {name: public for name, (_, public) in whys.items()},
            "files": {p.relative_to(staging).as_posix(): sha256(p)
                      for p in sorted(staging.rglob("*")) if p.is_file()},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        labels = {name: f"v{m['version']}" for name, m in models.items()}
        import bentoml  # only now: everything above may refuse without touching the store

        with bentoml.models.create(cfg.bundle_name, labels=labels,
                                   metadata={"as_of": manifest["as_of"],
                                             "versions": {n: m["version"]
                                                          for n, m in models.items()}}
                                   ) as stored:
            shutil.copytree(staging, stored.path, dirs_exist_ok=True)
    return {**manifest, "tag": str(stored.tag)}


def verify(path: Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path`` after checking every listed file exists and
    has its recorded sha256; raises BundleError naming the first problem."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} is missing: not a growthloop bundle")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    lacking = [key for key in ("files", "models", "missing", "as_of")
               if not isinstance(manifest, dict) or key not in manifest]
    if lacking:
        raise BundleError(f"{manifest_path} is corrupt: it lacks {', '.join(lacking)}")
    files = manifest["files"]
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: format_version {manifest.get('format_version')!r}"
                          f", this code reads {FORMAT_VERSION}; run `growth bundle` again")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"bundle file missing: {file}")
        if sha256(file) != expected:
            raise BundleError(f"bundle file corrupt or modified: {file} (sha256 differs from "
                              f"{MANIFEST}); run `growth bundle` again")
    return manifest


def open_bundle(ref: str) -> Bundle:
    """A verified bundle from a BentoML tag (``growthloop``, ``growthloop:latest``,
    ``growthloop:<version>``) in the store BENTOML_HOME points at, or from a folder path."""
    path = Path(ref)
    tag = ref
    if not path.is_dir():
        import bentoml
        from bentoml.exceptions import BentoMLException

        try:
            stored = bentoml.models.get(ref)
        except BentoMLException as exc:
            from bentoml._internal.configuration.containers import BentoMLContainer

            store = BentoMLContainer.model_store_dir.get()
            raise BundleError(f"no bundle {ref!r} in the BentoML store {store}: run "
                              f"`growth bundle` first ({exc})") from exc
        except Exception as exc:  # its model.yaml damaged: BentoML raises what its parser does
            raise BundleError(f"bundle {ref!r} cannot be read from the BentoML store: its "
                              f"model.yaml is damaged ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc!r}); run "
                              "`growth bundle` again or serve another version") from exc
        path, tag = Path(stored.path), str(stored.tag)
    return Bundle(path, verify(path), tag)


def describe(manifest: dict[str, Any], cfg: ServingConfig) -> list[str]:
    """What ``growth bundle`` and ``growth run`` print: contents and how to serve them."""
    lines = [f"bundle {manifest['tag']} as of {manifest['as_of']} "
             f"(BentoML store {os.environ.get('BENTOML_HOME')})"]
    for name, m in manifest["models"].items():
        details = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else
            f"{k} " + " ".join(f"{a}:{b}" for a, b in v.items()) if isinstance(v, dict) else
            f"{k} {v}" for k, v in m.items() if k not in ("version", "run_id"))
        lines.append(f"  {name} v{m['version']}: {details}")
    for name, why in manifest["missing"].items():
        lines.append(f"  {name}: not bundled: {why}")
    lines.append(f"serve it: growth serve --port {cfg.port}  (audience page at "
                 f"http://{cfg.host}:{cfg.port}/, API docs at /docs; e.g. curl -X POST "
                 f"http://{cfg.host}:{cfg.port}/recommend -H 'Content-Type: application/json' "
                 "-d '{\"k\": 5}')")
    return lines


def bundle_after_run(ds: Dataset, say: Callable[[str], None] = lambda line: None
                     ) -> list[str]:
    """The last step of ``growth run``: bundle the champions, or say why not (``say``: as
    :func:`build_bundle`)."""
    from serving.config import load_serving_config, use_bentoml_home

    cfg = load_serving_config()
    use_bentoml_home(cfg)
    try:
        return describe(build_bundle(ds, cfg, say), cfg)
    except BundleError as exc:
        return [f"bundle: skipped: {exc}"]
