"""Hyper-parameter search with Optuna: ``growth tune churn|coupon|two-tower``.

    growth tune two-tower --trials 30
    growth tune churn --trials 40 --workers 2        # 2 processes share one SQLite study
    growth tune coupon --trials 20 --storage postgresql://db/optuna --study coupon-aug
        # the same command on several machines: each adds its trials to the shared study

Each trial trains on the training data and returns the validation score (higher is
better); the test window is never read. Weak trials are stopped early by the median pruner
(see :mod:`training.tuning.space`). Fields set with ``--set`` stay fixed, not searched.
A two-tower trial trains at most 4 epochs; the written config keeps the base ``epochs``.

The first trial of a new study is the base config itself (``configs/<model>.yaml`` or
``--config``, with ``--set``): its values of the searched fields, a value outside the search
space clipped to its bound (or, not one of a field's choices, drawn). So the best trial is
never worse than the config it would replace, and the session reports both scores.

MLflow: one parent run per session in experiment ``<model>_tuning``; each trial is a child
run (tag ``mlflow.parentRunId``) logged by whichever process ran it, with its parameters,
the values reported to the pruner step by step as ``<metric>_at_step`` (e.g.
``val_pr_auc_at_step``: a learning curve, whose last step is not the score), the trial's
score as ``<metric>`` (``val_pr_auc``, ``val_recall_at_20``: what a training run logs under
that name) and as ``value`` (Optuna's name), and tag ``optuna.state`` (COMPLETE or PRUNED;
a pruned trial has no score). The parent run logs ``best_value`` and ``base_value`` (metrics)
and ``best_trial`` and ``best.<field>`` (params). The best trial of the study is applied to
the base config and written as a full config file (default ``configs/tuned/<model>.yaml``,
loadable with ``--config``), which the parent run logs too.
A file there that records a better score measured on the same model, data and settings is
kept (``overwrite`` replaces it); the session's best config is then only logged in MLflow.

Several processes share a study through an Optuna RDB storage. ``--workers K`` starts K
spawned processes on this machine; ``--trials N`` is the number this command runs in total,
split between them. Without ``--storage``, one worker uses an in-memory study and several
use a SQLite file under ``artifacts/tuning/``. A ``--storage`` SQLite file must lie in an
existing folder (a mistyped path would start a new, empty study), and the URL must be an
SQLAlchemy database URL (``sqlite:///path``, ``postgresql://...``), not an http:// address.

Reproducibility: one worker without ``--storage`` draws the same trials again from the
config's ``seed``. With ``--storage`` the samplers are unseeded, so sessions joining the same
study do not repeat each other's trials; with ``--workers`` > 1 each worker samples from the
trials finished so far, so the trials depend on timing. Either way two identical commands
give different trials, and the session says so in its first line (``run.unreproducible``).

The modules: ``space`` (what is searched, per model), ``request`` (what a session is asked),
``storage`` (the Optuna storage), ``identity`` (what a score is measured on),
``tuned_file`` (the written config and its header) and ``run`` (the session: ``tune``).
"""

# what `growth tune` (growth/cli.py) imports
from training.tuning.request import TuneRequest
from training.tuning.run import tune
from training.tuning.space import SPECS
from training.tuning.tuned_file import tuned_path

__all__ = ["SPECS", "TuneRequest", "tune", "tuned_path"]
