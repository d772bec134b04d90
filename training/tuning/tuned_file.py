"""The tuned config file: the full config as YAML under comment lines that record the
study's best score (``HEADER``) and what it was measured on (``SETTINGS``); read back to
decide whether a later study's best replaces it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from features.sources import GrowthError
from training.tuning.identity import checked_settings, digest, setting_differences
from training.tuning.request import TuneRequest
from training.tuning.space import ModelSpec, model_spec

TUNED_DIR = Path("configs/tuned")  # default output: configs/tuned/<model>.yaml
# the first line of a tuned config (a YAML comment), which ``recorded_best`` reads back
HEADER = ("{model} tuned by `growth tune {command}`: study {study}, trial {trial} of {trials}, "
          "{metric} {value:.6g}")
HEADER_LINE = re.compile(r"# (?P<model>\S+) tuned by `growth tune [^`]*`: study (?P<study>.*), "
                         r"trial \d+ of \d+, (?P<metric>\S+) (?P<value>\S+)")
# a later header line: what the score was measured on besides the config's own fields
SETTINGS = "measured on data {data}; data config {data_config}; searched {searched}"
SETTINGS_LINE = re.compile(r"# measured on data (?P<data>.*); data config (?P<data_config>"
                           r"[0-9a-f]+); searched (?P<searched>\S*)")


def write_tuned_config(cfg: BaseModel, path: Path, header: list[str]) -> Path:
    """Write the full config (every field) as YAML, with ``header`` as comment lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    path.write_text("".join(f"# {line}\n" for line in header) + body)
    return path


def tuned_path(request: TuneRequest) -> Path:
    """Where the session writes its config: ``out``, or configs/tuned/<model>.yaml."""
    return request.out or TUNED_DIR / f"{model_spec(request.model).name}.yaml"


def recorded_best(path: Path) -> dict[str, str] | None:
    """The model, study, metric and value that a tuned config's first line (``HEADER``)
    records; None when ``path`` is no file or does not start with that line."""
    if not path.is_file():
        return None
    found = HEADER_LINE.fullmatch(path.read_text(errors="replace").partition("\n")[0])
    return found.groupdict() if found else None


def recorded_settings(path: Path) -> dict[str, Any] | None:
    """What a tuned config's header records its score was measured on besides the config's
    own fields (``SETTINGS``): data, data config digest, searched fields; None when it does
    not (a file written before ``growth tune`` recorded them)."""
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        found = SETTINGS_LINE.fullmatch(line)
        if found:
            return {**found.groupdict(),
                    "searched": [n for n in found["searched"].split(",") if n]}
    return None


def _settings_differ(path: Path, spec: ModelSpec, identity: dict[str, Any]) -> list[str]:
    """How what ``path``'s score was measured on differs from ``identity`` (``study_identity``):
    its header's data, data config and searched fields, and its config's other fields."""
    recorded = recorded_settings(path)
    try:
        old = spec.load_config(path, None)
    except GrowthError:
        return [f"its contents, which do not load as a {spec.name} config"]
    differ: list[str] = []
    searched = set(identity["searched"])
    if recorded is not None:
        if recorded["data"] != identity["data"]:
            differ.append(f"data ({recorded['data']} there, {identity['data']} here)")
        if recorded["data_config"] != digest(identity["data_config"]):
            differ.append("the data config")
        if sorted(recorded["searched"]) != identity["searched"]:
            differ.append(f"searched ({','.join(recorded['searched'])} there, "
                          f"{','.join(identity['searched'])} here)")
        searched |= set(recorded["searched"])
    theirs = checked_settings(old.model_dump(mode="json"), sorted(searched))
    ours = {k: v for k, v in identity["fixed"].items() if k not in searched}
    return differ + setting_differences("fixed", theirs, ours)


def against_existing(path: Path, spec: ModelSpec, value: float, identity: dict[str, Any],
                      overwrite: bool) -> tuple[bool, str | None]:
    """Whether to write the study's best (``value``) to ``path``, and what to say: a file
    recording a better score of this model's metric (higher is better, compared as written,
    to 6 significant digits) measured on the same data and settings is kept unless
    ``overwrite``; one measured on other settings is replaced (the scores do not compare),
    with a warning naming both."""
    old = recorded_best(path)
    if old is None or (old["model"], old["metric"]) != (spec.name, spec.metric):
        return True, None
    try:
        if float(old["value"]) <= float(f"{value:.6g}"):
            return True, None
    except ValueError:  # not a number: nothing to compare
        return True, None
    theirs = f"{spec.metric} {old['value']} (study {old['study']})"
    logged = (f"the replaced config is logged in MLflow experiment {spec.name}_tuning, run "
              f"{old['study']}")
    differ = _settings_differ(path, spec, identity)
    if differ:
        return True, (f"replaced {path}, whose {theirs} is better than this study's "
                      f"{value:.6g} but was measured on other settings: {'; '.join(differ)}; "
                      f"the two scores do not compare; {logged}")
    same = "the same model, data and settings"
    if recorded_settings(path) is None:
        same = ("the same model and settings (the file does not record its data: if it was "
                "another, pass --overwrite)")
    if overwrite:
        return True, (f"replaced {path} (--overwrite), whose {theirs} is better than this "
                      f"study's {value:.6g}, measured on {same}; {logged}")
    return False, f"its {theirs} beats this study's best {value:.6g}, measured on {same}"


def train_command(request: TuneRequest, path: Path) -> str:
    """The ``growth train`` command line that trains with the tuned config at ``path``."""
    args = ["growth", "train", request.model, "--config", str(path)]
    if request.data is not None:
        args += ["--data", str(request.data)]
    if request.data_config is not None:
        args += ["--data-config", str(request.data_config)]
    return shlex.join(args)
