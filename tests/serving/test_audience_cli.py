"""``growth audience``: the audience ``POST /audience`` gives, built from the bundle without a
server, written as the API answers; exclusion files; errors named by option."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from features.sources import GrowthError
from serving.audience import read_household_ids
from tests.cli import run_growth


def growth_audience(world, *args: str, bundle: str | None = None
                    ) -> subprocess.CompletedProcess:
    """``growth audience`` on the serving tests' store, run in their session folder."""
    return run_growth("audience", *args, "--bundle", bundle or world.tag,
                      cwd=world.data.parent, env={"BENTOML_HOME": str(world.bentoml_home)},
                      timeout=120)


def test_cli_audience_equals_the_api_answer(world, client, tmp_path: Path) -> None:
    (tmp_path / "suppress.txt").write_text("1\n\n2\n")
    res = growth_audience(world, "churn", "--top-n", "40", "--control-fraction", "0.25",
                          "--seed", "3", "--exclude", str(tmp_path / "suppress.txt"),
                          "--out", str(tmp_path / "churn.csv"))
    assert res.returncode == 0, res.stderr
    api = client.post("/audience", json={"model": "churn", "top_n": 40, "control_fraction": 0.25,
                                         "seed": 3, "exclude_household_ids": [1, 2],
                                         "format": "csv"})
    assert api.status_code == 200, api.text
    assert (tmp_path / "churn.csv").read_text() == api.text
    assert (f"churn v1 as of {world.as_of} (bundle {world.tag}): 40 households, 30 treated and "
            "10 control, expected churners") in res.stdout
    assert "fewer than --top-n" not in res.stdout  # no notes: the audience asked for

    # An earlier audience file keeps its households out of the next one (JSON this time).
    first = pd.read_csv(tmp_path / "churn.csv")
    res = growth_audience(world, "coupon", "--campaign-id", "11", "--min-score", "0.0",
                          "--exclude", str(tmp_path / "churn.csv"),
                          "--out", str(tmp_path / "coupon.json"))
    assert res.returncode == 0, res.stderr
    got = json.loads((tmp_path / "coupon.json").read_text())
    api = client.post("/audience", json={"model": "coupon", "campaign_id": 11, "min_score": 0.0,
                                         "exclude_household_ids": first["household_id"].tolist()})
    assert got == api.json()
    members = {m["household_id"] for m in got["households"]}
    assert members and not members & set(first["household_id"])

    res = growth_audience(world, "churn", "--top-n", "1000000", "--out",
                          str(tmp_path / "all.csv"))
    assert res.returncode == 0, res.stderr
    scored = len(pd.read_csv(tmp_path / "all.csv"))
    assert (f"{scored:,} households, fewer than --top-n 1,000,000: {scored:,} households are "
            "scored" in res.stdout)
    res = growth_audience(world, "churn", "--min-score", "1.0", "--exclude",
                          str(tmp_path / "suppress.txt"), "--out", str(tmp_path / "none.csv"))
    assert res.returncode == 0, res.stderr
    assert ": 0 households, 0 treated" in res.stdout
    assert "no household scores at least --min-score 1; the highest score is 0." in res.stdout

    # the households already gone left out, as the API's max_days_since_last_purchase does
    res = growth_audience(world, "churn", "--top-n", "1000000", "--max-days-since-purchase",
                          "14", "--out", str(tmp_path / "recent.csv"))
    assert res.returncode == 0, res.stderr
    recent = pd.read_csv(tmp_path / "recent.csv")
    assert 0 < len(recent) < scored and recent["days_since_last_purchase"].le(14).all()
    assert "--max-days-since-purchase 14 removes" in " ".join(res.stdout.split())
    api = client.post("/audience", json={"model": "churn", "top_n": 1_000_000, "format": "csv",
                                         "max_days_since_last_purchase": 14})
    assert (tmp_path / "recent.csv").read_text() == api.text


@pytest.mark.parametrize(("args", "message"), [
    (("churn", "--out", "a.json"), "error: give --top-n or --min-score (or both)"),
    (("coupon", "--top-n", "5", "--out", "a.json"),
     "error: --campaign-id is required when MODEL is coupon"),
    (("churn", "--top-n", "0", "--control-fraction", "1", "--out", "a.csv"),
     "error: --top-n: Input should be greater than or equal to 1; --control-fraction: Input "
     "should be less than 1"),
    (("coupon", "--campaign-id", "999", "--top-n", "5", "--out", "a.csv"),
     "error: --campaign-id: unknown campaign 999; expected one of [1, "),
    (("churn", "--top-n", "5", "--out", "a.xlsx"),
     "error: --out a.xlsx: expected a file name ending in .csv or .json"),
])
def test_bad_options_are_one_line_errors(world, tmp_path: Path, args: tuple[str, ...],
                                         message: str) -> None:
    res = growth_audience(world, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith(message) and len(res.stderr.strip().splitlines()) == 1
    cwd = world.data.parent
    assert not (cwd / "a.json").exists() and not (cwd / "a.csv").exists()


def test_a_campaign_starting_before_the_data_is_an_error(world, early_bundle,
                                                        tmp_path: Path) -> None:
    """`growth audience coupon --campaign-id 24` on the embedded data wrote 12 households with
    one score and deciles by row order; like `growth score`, it refuses, naming the dates."""
    from tests.serving.conftest import before_data_error

    res = growth_audience(world, "coupon", "--campaign-id", "24", "--top-n", "10", "--out",
                          str(tmp_path / "c24.csv"), bundle=early_bundle.tag)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip() == ("error: --campaign-id: "
                                  + before_data_error(early_bundle, 24))
    assert not (tmp_path / "c24.csv").exists()
    res = growth_audience(world, "coupon", "--campaign-id", "11", "--top-n", "10", "--out",
                          str(tmp_path / "c11.csv"), bundle=early_bundle.tag)
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "c11.csv")) == 10
    assert "campaign 11 (bundle" in res.stdout and ": 10 households, 10 treated" in res.stdout


def test_model_missing_from_the_bundle_is_named(world, tmp_path: Path) -> None:
    res = growth_audience(world, "churn", "--top-n", "5", "--out", str(tmp_path / "a.csv"),
                          bundle=world.partial_tag)
    assert res.returncode == 2
    assert (f"error: bundle {world.partial_tag} has no churn model: churn has no @champion in "
            "the registry at bundle time") in res.stderr
    assert not (tmp_path / "a.csv").exists()


def test_household_id_files(tmp_path: Path) -> None:
    lines = tmp_path / "ids.txt"
    lines.write_text("\n7\n 8 \n\n7\n")
    assert read_household_ids(lines) == [7, 8, 7]
    table = tmp_path / "audience.csv"
    table.write_text("rank,household_id,score\n1,42,0.9\n2,43,0.8\n")
    assert read_household_ids(table) == [42, 43]
    pd.DataFrame({"household_id": [5, 6]}).to_parquet(tmp_path / "ids.parquet")
    assert read_household_ids(tmp_path / "ids.parquet") == [5, 6]
    (tmp_path / "empty.txt").write_text("\n")
    assert read_household_ids(tmp_path / "empty.txt") == []
    # the contract's name rules: any case, surrounding spaces
    (tmp_path / "upper.csv").write_text("Rank, HOUSEHOLD_ID \n1,9\n")
    assert read_household_ids(tmp_path / "upper.csv") == [9]
    pd.DataFrame({"Household_Id": [3]}).to_parquet(tmp_path / "upper.parquet")
    assert read_household_ids(tmp_path / "upper.parquet") == [3]


def test_an_audience_json_file_is_an_exclusion_list(tmp_path: Path) -> None:
    from serving.schemas import AudienceMember, AudienceResponse

    members = [AudienceMember(rank=i + 1, household_id=h, score=0.5 - i / 10, decile=1,
                              control=False, reasons=[]) for i, h in enumerate([31, 17])]
    body = AudienceResponse(model="churn", model_version=1, campaign_id=None,
                            as_of="2017-11-06", size=2, treated=2, control=0,
                            expected_responders=0.7, households=members)
    (tmp_path / "earlier.json").write_text(body.model_dump_json())
    assert read_household_ids(tmp_path / "earlier.json") == [31, 17]
    (tmp_path / "other.json").write_text('{"households": [{"id": 1}]}')
    with pytest.raises(GrowthError, match="other.json: not an audience as POST /audience "
                                          "answers it: "):
        read_household_ids(tmp_path / "other.json")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.csv", "household_id\n1\nabc\n", "bad.csv, line 3: expected a household id (an "
                                          "integer 0..9223372036854775807), got 'abc'"),
    ("neg.txt", "4\n-5\n", "neg.txt, line 2: expected a household id (an integer "
                           "0..9223372036854775807), got '-5'"),
    ("big.txt", "9223372036854775808\n", "big.txt, line 1: expected a household id (an "
                                         "integer 0..9223372036854775807), got "
                                         "'9223372036854775808'"),
    ("short.csv", "rank,household_id\n1\n", "short.csv, line 2: expected a household id (an "
                                            "integer 0..9223372036854775807), got ''"),
    ("other.csv", "customer,score\n1,0.5\n", "other.csv, line 1: expected a 'household_id' "
                                             "column or one id per line, got 'customer,score'"),
    ("wide.csv", ",".join(f"c{i}" for i in range(40)) + "\n",  # a long line is cut short
     "wide.csv, line 1: expected a 'household_id' column or one id per line, got "
     f"'{','.join(f'c{i}' for i in range(40))[:77]}...'"),
])
def test_bad_household_id_files_name_the_line(tmp_path: Path, name: str, text: str,
                                              message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(GrowthError) as err:
        read_household_ids(tmp_path / name)
    assert str(err.value) == f"{tmp_path / name}{message.removeprefix(name)}"


def test_parquet_without_household_ids_is_an_error(tmp_path: Path) -> None:
    pd.DataFrame({"customer": [1]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(GrowthError, match="a.parquet: no column 'household_id' \\(columns: "
                                          "customer\\)"):
        read_household_ids(tmp_path / "a.parquet")
    pd.DataFrame({"household_id": [1.5]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(GrowthError, match="b.parquet: column 'household_id' must hold integer "
                                          "household ids, found float64"):
        read_household_ids(tmp_path / "b.parquet")
    pd.DataFrame({"household_id": pd.array([3, None, -1], dtype="Int64")}).to_parquet(
        tmp_path / "c.parquet")
    with pytest.raises(GrowthError, match="c.parquet, row 2: expected a household id"):
        read_household_ids(tmp_path / "c.parquet")
