"""``growth bento``: a verified bundle and the service's code as one Bento, the unit BentoML
turns into a container image or carries to another machine.

    growth bento [--bundle growthloop:VERSION]
    bentoml containerize growthloop:<bento version>         # an OCI image (needs Docker)
    docker run --rm -p 3000:3000 -e GROWTH_API_KEY=… growthloop:<bento version>
    bentoml export growthloop:<bento version> g.bento       # one file; `bentoml import` there

The Bento holds the Python sources of ``features/``, ``training/`` and ``serving/`` and
``configs/serving.yaml`` (``SOURCES``); a reference to the bundle, which BentoML copies into
the image or the exported file; the bundle's exact tag as ``GROWTH_BUNDLE``; and the Python
packages the service imports (``RUNTIME``) with everything they require, each pinned to the
version installed here, which ``make install`` takes from constraints.txt. Requirements are
read for this interpreter (Linux x86_64, Python 3.11), the platform of the image's
``python:3.11-slim``. Neither torch, MLflow nor Optuna is among them: the service trains
nothing. They are not locked again (``lock_packages: false``): the pins are already exact, and
locking would ask the package index.

``tests/serving/test_bento.py`` exports a Bento, serves it from the exported folder with an
empty BentoML store, and lets its processes import nothing but the Bento's own sources and
the packages its requirements name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from features.sources import GrowthError
from serving.bundle import open_bundle
from serving.config import REPO_ROOT, ServingConfig, use_bentoml_home
from serving.serve import SERVICE, check_store_ref

# The distributions the service's modules import (directly, not through another of these);
# scikit-learn because the propensity models' modules import it where they fit calibrators.
RUNTIME = ("bentoml", "lightgbm", "faiss-cpu", "numpy", "pandas", "pyarrow", "duckdb",
           "pydantic", "pyyaml", "uvloop", "httptools", "scikit-learn", "threadpoolctl")
SOURCES = ("features/**/*.py", "training/**/*.py", "serving/**/*.py", "configs/serving.yaml")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class BentoResult:
    tag: str
    bundle_tag: str
    as_of: str
    versions: dict[str, int]
    requirements: list[str]
    home: Path


def pinned_requirements(roots: tuple[str, ...] = RUNTIME) -> list[str]:
    """``Name==version`` for ``roots`` and every distribution they require (with the extras
    asked for), as installed in this environment, sorted by name. A requirement whose markers
    hold here but which is not installed is a GrowthError: the environment is incomplete."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    expanded: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    queue = [(Requirement(r), "the service") for r in roots]
    while queue:
        req, wanted_by = queue.pop()
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise GrowthError(f"{req.name} (needed by {wanted_by}) is not installed: run "
                              "`make install`") from exc
        pins.setdefault(name, f"{dist.metadata['Name']}=={dist.version}")
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in expanded:
                continue
            expanded.add((name, extra))
            for line in dist.requires or []:
                sub = Requirement(line)
                if sub.marker.evaluate({"extra": extra}) if sub.marker else extra == "":
                    queue.append((sub, req.name))
    return [pins[name] for name in sorted(pins)]


def build_bento(cfg: ServingConfig, bundle_ref: str | None = None) -> BentoResult:
    """Verify the bundle (``growth serve``'s checks), then build the Bento in the BentoML store
    that ``BENTOML_HOME`` or configs/serving.yaml names."""
    home = use_bentoml_home(cfg)
    ref = bundle_ref or f"{cfg.bundle_name}:latest"
    check_store_ref(ref, "a Bento")
    bundle = open_bundle(ref)
    requirements = pinned_requirements()
    # BentoML imports the service to find its models; the module reads GROWTH_BUNDLE then
    os.environ["GROWTH_BUNDLE"] = bundle.tag
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema

    bento = bentoml.bentos.build(
        SERVICE,
        labels={"bundle": bundle.tag, "as_of": str(bundle.as_of)},
        include=list(SOURCES),
        exclude=["__pycache__/", "*.pyc"],
        envs=[BentoEnvSchema(name="GROWTH_BUNDLE", value=bundle.tag)],
        # BentoML adds its own pin (the running version, the same as ours)
        python={"packages": [r for r in requirements if not r.startswith("bentoml=")],
                "lock_packages": False},
        docker={"python_version": PYTHON},
        build_ctx=str(REPO_ROOT),
    )
    return BentoResult(str(bento.tag), bundle.tag, str(bundle.as_of), dict(bundle.versions),
                       requirements, home)


def describe(result: BentoResult) -> list[str]:
    """What ``growth bento`` prints: what the Bento holds and the commands that use it."""
    bentoml_cli = Path(sys.executable).with_name("bentoml")
    env = f"BENTOML_HOME={result.home}"
    models = ", ".join(f"{n} v{v}" for n, v in result.versions.items())
    return [
        f"bento {result.tag}: bundle {result.bundle_tag} as of {result.as_of} ({models}), "
        f"the service's sources, {len(result.requirements)} Python packages pinned "
        f"(BentoML store {result.home})",
        f"image:  {env} {bentoml_cli} containerize {result.tag}   (needs Docker)",
        f"run it: docker run --rm -p 3000:3000 -e GROWTH_API_KEY=<key> {result.tag}   "
        "(-e GROWTH_SERVE_WORKERS=N for N worker processes; it listens on every interface "
        "of the container: without GROWTH_API_KEY, /propensity and /audience answer anyone "
        "who reaches it)",
        f"move it: {env} {bentoml_cli} export {result.tag} growthloop.bento; then "
        "`bentoml import growthloop.bento` on the other machine",
    ]
