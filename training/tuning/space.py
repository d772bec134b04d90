"""What is searched, per model. A model is a :class:`ModelSpec`: a search space over fields
of its config and an objective that trains on the training data and returns the validation
score (higher is better). Objectives report intermediate values (two-tower: validation
recall@20 each epoch; LightGBM: the booster's validation metric every ``report_every``
rounds) so the median pruner stops weak trials early. Those values are a learning curve,
not the score: a LightGBM score is taken at the best round (early stopping), and with
``linear_weight`` > 0 (coupon's config) it is the booster blended with a linear model, while
the pruner judges the booster's curve alone. Each trial's MLflow run logs the curve as
``<metric>_at_step`` (:attr:`ModelSpec.progress_metric`) and the score as ``<metric>``, as a
training run logs it. ``base_params`` fits the base config's values into the space, for the
first trial of a new study.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import BaseModel

from features.config import parse_overrides
from features.dataset import Dataset
from features.sources import GrowthError

TWO_TOWER_TRIAL_EPOCHS = 4  # a two-tower trial trains at most this many epochs

Report = Callable[[int, float], None]  # report(step, value): an intermediate value
Suggest = Callable[[optuna.Trial, str], Any]  # draws one parameter by name


@dataclass(frozen=True)
class Param:
    """A :data:`Suggest` that knows its range (``base_params`` fits values into it)."""

    distribution: BaseDistribution

    def __call__(self, trial: optuna.Trial, name: str) -> Any:
        d = self.distribution
        if isinstance(d, FloatDistribution):
            return trial.suggest_float(name, d.low, d.high, log=d.log)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(name, d.low, d.high, log=d.log)
        assert isinstance(d, CategoricalDistribution)
        return trial.suggest_categorical(name, d.choices)


def _float(low: float, high: float, log: bool = False) -> Suggest:
    return Param(FloatDistribution(low, high, log=log))


def _int(low: int, high: int, log: bool = False) -> Suggest:
    return Param(IntDistribution(low, high, log=log))


def _choice(*options: Any) -> Suggest:
    return Param(CategoricalDistribution(options))


LIGHTGBM_SPACE: dict[str, Suggest] = {
    "learning_rate": _float(0.01, 0.2, log=True),
    "num_leaves": _int(4, 128, log=True),
    "min_data_in_leaf": _int(10, 300, log=True),
    "feature_fraction": _float(0.4, 1.0),
    "bagging_fraction": _float(0.5, 1.0),
    "lambda_l2": _float(1e-3, 100.0, log=True),  # holds configs/churn.yaml's 50
}
TWO_TOWER_SPACE: dict[str, Suggest] = {
    "lr": _float(3e-4, 1e-2, log=True),
    "dim": _choice(32, 64, 128),
    "temperature": _float(0.02, 0.2, log=True),
    "batch_size": _choice(512, 1024, 2048),  # smaller batches: slower, fewer negatives
    # a few values only: each distinct one prepares the training examples again
    "history_half_life_days": _choice(30.0, 60.0, 120.0, 240.0),
}


@dataclass(frozen=True)
class ModelSpec:
    """What the tuner needs to know about one model family."""

    name: str  # registry and experiment name: two_tower, churn, coupon
    metric: str  # what ``score`` returns, logged under this name on each trial's run
    space: dict[str, Suggest]  # config field -> how to draw it
    warmup_steps: int  # the pruner judges no trial before this step
    load_config: Callable[[Path | None, list[str] | None], BaseModel]
    score: Callable[[Dataset, Any, Report | None], float]  # (ds, cfg, report) -> validation
    # builds (and memoises for ``score``) the training examples; raises GrowthError when the
    # data cannot support the model, so a session fails before its study starts
    prepare: Callable[[Dataset, Any], object]

    @property
    def progress_metric(self) -> str:
        """The name a trial's run logs its reported values under, step by step: the
        learning curve the pruner judges, not the score (``metric``)."""
        return f"{self.metric}_at_step"


def _two_tower_spec() -> ModelSpec:
    from training.two_tower.config import load_two_tower_config
    from training.two_tower.train import prepare, train

    # fields ``prepare`` reads: trials that agree on them share the prepared examples
    prepare_fields = ("as_of", "window_days", "n_cutoffs", "catalog_weeks", "history_len",
                      "history_half_life_days", "new_items_only")
    prepared: dict[tuple, Any] = {}

    def prepared_for(ds: Dataset, cfg: Any) -> Any:
        key = tuple(getattr(cfg, f) for f in prepare_fields)
        if key not in prepared:
            prepared[key] = prepare(ds, cfg)
        return prepared[key]

    def score(ds: Dataset, cfg: Any, report: Report | None = None) -> float:
        """Best validation recall@20 over at most TWO_TOWER_TRIAL_EPOCHS epochs (early
        stopping as configured; validation recall usually peaks within a few epochs)."""
        cfg = with_values(cfg, {"epochs": min(cfg.epochs, TWO_TOWER_TRIAL_EPOCHS)})

        def on_epoch(record: dict) -> None:
            if report is not None:
                report(record["epoch"], record["val_recall_at_20"])

        return train(prepared_for(ds, cfg), cfg, on_epoch=on_epoch).best_val_recall

    # run.py's MODEL_NAME and GATE_METRIC, not imported: run.py loads FAISS and the bundle,
    # seconds of start-up in every worker
    return ModelSpec("two_tower", "val_recall_at_20", TWO_TOWER_SPACE, warmup_steps=2,
                     load_config=load_two_tower_config, score=score, prepare=prepared_for)


def _propensity_spec(kind: str) -> ModelSpec:
    """churn / coupon: ``training.propensity.<kind>.validation_score`` fits LightGBM and
    returns the validation-fold metric, reporting every ``report_every`` rounds."""
    module_name = f"training.propensity.{kind}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise GrowthError(f"tuning {kind} needs {module_name}.validation_score, and that "
                          "module is missing") from exc
    from training.propensity import config

    return ModelSpec(kind, getattr(module, "GATE_METRIC", "validation_score"), LIGHTGBM_SPACE,
                     warmup_steps=30, load_config=getattr(config, f"load_{kind}_config"),
                     score=module.validation_score, prepare=getattr(module, f"{kind}_data"))


SPECS: dict[str, Callable[[], ModelSpec]] = {
    "two-tower": _two_tower_spec,
    "churn": lambda: _propensity_spec("churn"),
    "coupon": lambda: _propensity_spec("coupon"),
}


def model_spec(model: str) -> ModelSpec:
    if model not in SPECS:
        raise GrowthError(f"cannot tune {model!r}; choose one of {', '.join(SPECS)}")
    return SPECS[model]()


def searched_fields(spec: ModelSpec, cfg: BaseModel, overrides: tuple[str, ...]) -> list[str]:
    """Space fields the config has and ``--set`` does not fix."""
    fixed = set(parse_overrides(list(overrides)))
    names = [n for n in spec.space if n in type(cfg).model_fields and n not in fixed]
    if not names:
        raise GrowthError(f"nothing to tune for {spec.name}: every searched field "
                          f"({', '.join(spec.space)}) is fixed with --set or not in its config")
    return names


def base_params(spec: ModelSpec, base: BaseModel, searched: list[str]
                ) -> tuple[dict[str, Any], list[str]]:
    """The base config's values of the searched fields, as the first trial of a new study,
    and a line for each value not tried as it is: a number outside its range is clipped to
    the bound; a value not among a field's choices (or not a number) is left to the sampler."""
    values: dict[str, Any] = {}
    changes: list[str] = []
    for name in searched:
        value = getattr(base, name)
        dist = getattr(spec.space[name], "distribution", None)
        if isinstance(dist, FloatDistribution | IntDistribution):
            if isinstance(value, bool) or not isinstance(value, int | float):
                changes.append(f"{name} {value!r} is not a number: drawn by the sampler")
                continue
            fitted = min(max(value, dist.low), dist.high)
            if fitted != value:
                changes.append(f"{name} {value:g} is outside the searched range "
                               f"{dist.low:g}..{dist.high:g}: tried as {fitted:g}")
            value = int(fitted) if isinstance(dist, IntDistribution) else float(fitted)
        elif isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                changes.append(f"{name} {value!r} is not one of the searched values "
                               f"{', '.join(map(str, dist.choices))}: drawn by the sampler")
                continue
            value = dist.choices[dist.choices.index(value)]
        values[name] = value
    return values, changes


def with_values(cfg: BaseModel, values: dict[str, Any]) -> BaseModel:
    """A validated copy of ``cfg`` with ``values`` (``model_copy`` would not validate)."""
    return type(cfg).model_validate({**cfg.model_dump(), **values})
