"""constraints.txt pins every package the project installs, and .venv holds those versions:
a fresh clone resolves what the recorded figures were measured with."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, SpecifierSet]:
    """name -> ``==version``; torch's pin carries no local label, so the CPU wheel these
    machines hold (``+cpu``) and PyPI's build both satisfy it."""
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one clause: name==version
        assert spec.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        out[canonicalize_name(req.name)] = req.specifier
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                       for r in extra]
    return [Requirement(r) for r in lines]


def test_every_declared_dependency_is_pinned_within_its_range():
    pinned = pins()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} (pyproject.toml) has no pin in constraints.txt"
        (pin,) = pinned[name]
        assert req.specifier.contains(pin.version, prereleases=True), (
            f"constraints.txt pins {req.name}{pin}, outside pyproject.toml's "
            f"{req.specifier}: run `make lock`")


def test_installed_versions_are_the_pinned_ones():
    wrong = []
    for name, pin in pins().items():
        try:
            have = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: pinned {pin}, not installed")
            continue
        if not pin.contains(have, prereleases=True):
            wrong.append(f"{name}: pinned {pin}, installed {have}")
    assert not wrong, "the environment differs from constraints.txt: " + "; ".join(wrong)
