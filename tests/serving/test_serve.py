"""``growth serve`` for real: a missing or corrupt bundle is a clear error (exit 2), a good one
is served by ``bentoml serve`` on 127.0.0.1 and answers ``bentoml.SyncHTTPClient``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]


def growth_serve_command(*args: str, home: Path, bundle: str | None = None
                         ) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "BENTOML_HOME": str(home)}
    env.pop("GROWTH_BUNDLE", None)
    return [sys.executable, "-m", "growth", "serve", *args,
            *(["--bundle", bundle] if bundle else [])], env


def growth_serve(*args: str, home: Path, bundle: str | None = None
                 ) -> subprocess.CompletedProcess:
    cmd, env = growth_serve_command(*args, home=home, bundle=bundle)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_growth_bundle_prints_how_to_serve(world, tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store"),
           "MLFLOW_TRACKING_URI": world.mlflow_uri}
    res = subprocess.run([sys.executable, "-m", "growth", "bundle", "--data", str(world.data)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "two_tower v1: " in res.stdout and "churn v1: " in res.stdout
    assert "serve it: growth serve --port 3000" in res.stdout
    for name in ("two_tower", "churn", "coupon"):  # a line as each export starts and ends
        assert f"bundle: exporting {name} v1 as of " in res.stdout
        assert f"bundle: {name} exported (" in res.stdout
    assert list((tmp_path / "store" / "models" / "growthloop").glob("*/manifest.json"))


def test_missing_bundle_is_an_error(world, tmp_path: Path) -> None:
    res = growth_serve(home=tmp_path / "empty")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "no bundle 'growthloop:latest' in the BentoML store" in res.stderr
    assert "growth bundle" in res.stderr


def test_corrupt_bundle_is_an_error(world, tmp_path: Path) -> None:
    home = tmp_path / "store"
    shutil.copytree(world.bentoml_home, home)
    folder = home / world.bundle_path.relative_to(world.bentoml_home)
    with (folder / "two_tower" / "recommendations.parquet").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage")
    res = growth_serve(home=home, bundle=world.tag)
    assert res.returncode == 2
    assert "recommendations.parquet (sha256 differs from manifest.json)" in res.stderr
    (folder / "churn" / "features.parquet").unlink()
    (folder / "two_tower" / "recommendations.parquet").unlink()
    res = growth_serve(home=home, bundle=world.tag)
    assert res.returncode == 2 and "bundle file missing" in res.stderr
    model_yaml = folder / "model.yaml"
    model_yaml.write_bytes(model_yaml.read_bytes()[:40])
    res = growth_serve(home=home, bundle=world.tag)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"bundle {world.tag!r} cannot be read from the BentoML store: its model.yaml is " \
           "damaged" in res.stderr


def test_port_in_use_is_an_error(world) -> None:
    """Checked before anything is printed or started (BentoML's process manager would die
    with an OSError traceback after the "serving ..." line)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = growth_serve("--port", str(port), home=world.bentoml_home, bundle=world.tag)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert (f"error: cannot serve on 127.0.0.1:{port}: the port is already in use: stop what "
            "listens there or pick another --port") in res.stderr


@pytest.mark.parametrize(("args", "bundle", "message"), [
    ((), "bad tag!!", "--bundle 'bad tag!!' is neither a bundle folder nor a valid tag "
                      "NAME[:VERSION] (bad tag!! is not a valid BentoML tag"),
    ((), "growthloop:", "--bundle 'growthloop:' is neither a bundle folder nor a valid tag"),
    ((), ".", "--bundle '.' is a folder: the service takes a bundle from the BentoML store"),
    (("--host", "localhost"), None, "--host 'localhost' is not an IP address"),
])
def test_bad_tag_or_host_is_an_error(tmp_path: Path, args: tuple[str, ...], bundle: str | None,
                                     message: str) -> None:
    res = growth_serve(*args, home=tmp_path / "empty", bundle=bundle)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_check_address_binds_as_bentoml_will() -> None:
    from features.sources import GrowthError
    from serving.serve import check_address

    port = free_port()
    check_address("127.0.0.1", port)  # free: no error, and the probe lets it go
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(GrowthError, match="the port is already in use"):
            check_address("127.0.0.1", port)


def test_a_key_setting_that_leaves_the_scores_open_is_warned_about() -> None:
    from serving.serve import key_warning

    assert key_warning("127.0.0.1", {}) is None  # this machine only, no key: the default
    assert key_warning("0.0.0.0", {"GROWTH_API_KEY": "s3cret"}) is None
    assert key_warning("::1", {}) is None
    for blank in ("", "  "):
        assert key_warning("127.0.0.1", {"GROWTH_API_KEY": blank}) == (
            "warning: GROWTH_API_KEY is set but blank, so no key is checked: /propensity "
            "and /audience are open; set a key or unset it")
    assert key_warning("0.0.0.0", {}) == (
        "warning: GROWTH_API_KEY is not set and 0.0.0.0 is reachable from other machines: "
        "anyone there can read /propensity and /audience scores")


def test_serve_and_sync_client(world, tmp_path: Path) -> None:
    import bentoml

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd, env = growth_serve_command("--port", str(port), home=world.bentoml_home,
                                    bundle=world.tag)
    with ServerProcess(cmd, tmp_path / "serve.log", env=env, cwd=REPO) as server:
        server.wait_ready(f"{url}/readyz")
        with bentoml.SyncHTTPClient(url) as client:
            recs = client.recommend({"household_id": 5, "k": 4})
            assert len(recs["items"]) == 4 and recs["model_versions"] == {"two_tower": 1}
            similar = client.similar_items({"product_id": world.indexed_products(1)[0],
                                            "k": 3})
            assert len(similar["items"]) == 3
            scores = client.propensity({"model": "churn", "household_ids": [1, 2]})
            assert [s["household_id"] for s in scores["scores"]] == [1, 2]
            audience = client.audience({"model": "churn", "top_n": 5})
            assert audience["size"] == 5
        bad = httpx.post(f"{url}/recommend", json={"k": 0})
        assert bad.status_code == 400 and bad.json()["error"].startswith("k: ")
        metrics = httpx.get(f"{url}/metrics").text
        # serving/metrics.py in bentoml serve's multiprocess mode: the workers' files summed
        count = "growthloop_request_duration_seconds_count"
        assert f'{count}{{endpoint="/recommend",status="200"}} 1.0' in metrics
        assert f'{count}{{endpoint="/recommend",status="400"}} 1.0' in metrics
        assert httpx.get(f"{url}/healthz").status_code == 200
        # bound to 127.0.0.1: a page whose own name resolves here (DNS rebinding) is refused
        rebound = httpx.post(f"{url}/propensity", json={"model": "churn", "household_ids": [1]},
                             headers={"Host": f"rebind.example:{port}"})
        assert rebound.status_code == 403 and rebound.json()["error"].startswith(
            "Host: this server does not answer requests addressed to 'rebind.example'")
        assert httpx.get(f"{url}/", headers={"Host": "rebind.example"}).status_code == 403
        assert httpx.get(f"{url}/metrics", headers={"Host": "rebind.example"}).status_code == 403
        local = httpx.get(f"{url}/healthz", headers={"Host": f"localhost:{port}"})
        assert local.status_code == 200


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROWTH_API_KEY", raising=False)
