"""``growth models list|promote|rollback``: thin commands over training.registry, with one clear
error line (exit 2) for an unknown model or version."""

from __future__ import annotations

import sys
from datetime import date

import mlflow
import pytest

from growth.cli import main
from tests.training.test_registry import _migrated_db, _store  # noqa: F401  (fast MLflow store)
from training import registry


def growth(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
           *args: str) -> tuple[int, str, str]:
    """Run the console entry point in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["growth", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code or 0, captured.out, captured.err


def register(model: str, data_end: date, recall: float) -> int:
    """A finished run with a text artifact, registered and passed through the gate."""
    with registry.tracked_run("models-cli-test", "fit") as run:
        mlflow.log_text("weights", "model/readme.txt")
    version = registry.register_version(model, run.info.run_id, "model", data_end,
                                        "/data/a", {"recall": recall})
    registry.promote_if_better(model, version, "recall")
    return version


def test_list_promote_rollback(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture) -> None:
    register("recs", date(2017, 5, 1), 0.20)  # v1 champion
    register("recs", date(2017, 6, 1), 0.25)  # v2 beats it
    register("recs", date(2017, 7, 1), 0.10)  # v3 rejected
    register("churnish", date(2017, 7, 1), 0.5)

    code, out, _ = growth(monkeypatch, capsys, "models", "list", "recs")
    assert code == 0
    lines = {line.split("│")[2].strip(): line for line in out.splitlines()
             if line.count("│") > 3 and "recs" in line}
    assert set(lines) == {"v1", "v2 *", "v3"}
    assert "2017-06-01" in lines["v2 *"] and "recall=0.25" in lines["v2 *"]
    assert "rejected: recall 0.1 <= champion v2 0.25" in lines["v3"]
    code, out, _ = growth(monkeypatch, capsys, "models", "list")
    assert code == 0 and "churnish" in out and "recs" in out

    code, out, _ = growth(monkeypatch, capsys, "models", "promote", "recs", "3")
    assert code == 0 and "recs@champion: v3 (was v2)" in out
    assert registry.champion_version("recs") == 3
    promotion = {v["version"]: v[registry.PROMOTION_TAG] for v in registry.list_versions("recs")}
    assert promotion[3] == ("rejected: recall 0.1 <= champion v2 0.25; then promoted by hand "
                            "(growth models promote), replacing v2")  # the gate's kept

    assert "until `growth bundle` is run and `growth serve` restarted" in " ".join(out.split())

    code, out, _ = growth(monkeypatch, capsys, "models", "rollback", "recs")
    assert code == 0 and "recs@champion: v2 (was v3)" in out
    assert registry.champion_version("recs") == 2
    assert "until `growth bundle` is run" in " ".join(out.split())
    # the version as `growth models list` spells it
    code, out, _ = growth(monkeypatch, capsys, "models", "promote", "recs", "v1")
    assert code == 0 and "recs@champion: v1 (was v2)" in out


def test_unknown_model_or_version_is_one_error_line(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    register("recs", date(2017, 5, 1), 0.20)
    for args, message in [
        (("models", "list", "nope"), "no registered model 'nope'; registered models: recs"),
        (("models", "promote", "nope", "1"), "no registered model 'nope'"),
        (("models", "promote", "recs", "9"), "recs has no version 9; versions: 1"),
        (("models", "promote", "recs", "x1"), "recs has no version x1; versions: 1"),
        (("models", "rollback", "recs"), "was the first champion: there is nothing to roll "
                                         "back to"),
    ]:
        code, out, err = growth(monkeypatch, capsys, *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error:") and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert registry.champion_version("recs") == 1
    # a model whose every version was deleted, and a champion whose predecessor was
    register("recs", date(2017, 6, 1), 0.30)  # v2 replaces v1
    mlflow.MlflowClient().delete_model_version("recs", "1")
    register("empty", date(2017, 5, 1), 0.20)
    mlflow.MlflowClient().delete_model_version("empty", "1")
    for args, message in [
        (("models", "rollback", "recs"), "recs champion v2 replaced v1, which has been "
                                         "deleted: choose a version with `growth models "
                                         "promote recs VERSION`"),
        (("models", "list", "empty"), "registered model 'empty' has no versions (all "
                                      "deleted); train one to register a version"),
    ]:
        code, out, err = growth(monkeypatch, capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_promoting_the_champion_again_changes_nothing(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    register("recs", date(2017, 5, 1), 0.20)  # v1 champion through the gate
    before = registry.list_versions("recs")[0][registry.PROMOTION_TAG]
    code, out, err = growth(monkeypatch, capsys, "models", "promote", "recs", "1")
    assert code == 2 and out == "" and "Traceback" not in err
    assert " ".join(err.split()) == "error: recs v1 is already @champion; nothing changed"
    after = registry.list_versions("recs")[0]
    assert after["champion"] and after[registry.PROMOTION_TAG] == before
    assert before.startswith("promoted: recall 0.2")


def test_two_tower_answers_to_either_spelling(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    """`growth train two-tower` registers `two_tower`: the models commands take the name as
    train spells it (compare too: tests/training/test_compare.py)."""
    register("two_tower", date(2017, 5, 1), 0.20)
    register("two_tower", date(2017, 6, 1), 0.10)  # rejected
    code, out, err = growth(monkeypatch, capsys, "models", "list", "two-tower")
    assert code == 0, err
    assert "two_tower" in out and "v1 *" in out
    code, out, err = growth(monkeypatch, capsys, "models", "promote", "two-tower", "2")
    assert code == 0 and "two_tower@champion: v2 (was v1)" in out, err
    code, out, err = growth(monkeypatch, capsys, "models", "rollback", "two-tower")
    assert code == 0 and "two_tower@champion: v1 (was v2)" in out, err
    code, _, err = growth(monkeypatch, capsys, "models", "list", "two-towers")
    assert code == 2 and "no registered model 'two-towers'; registered models: two_tower" in err


def test_spelled() -> None:
    from growth.cli import _spelled

    assert _spelled("two-tower", ["churn", "two_tower"]) == "two_tower"
    assert _spelled("two_tower", ["churn", "two-tower"]) == "two-tower"
    assert _spelled("two_tower", ["two_tower"]) == "two_tower"
    assert _spelled("nope", ["two_tower"]) == "nope"


def test_list_shows_every_metric_whole(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    """In a narrow terminal `models list` showed `recall_all_at_20=0.15…`: each metric is on
    its own line, whole (other columns give way or fold), and no cell ends in "…"."""
    from growth import display

    with registry.tracked_run("models-cli-test", "fit") as run:
        mlflow.log_text("weights", "model/readme.txt")
    version = registry.register_version(
        "two_tower", run.info.run_id, "model", date(2017, 12, 4),
        "/srv/shops/complete-journey/parquet-2024",
        {"val_recall_at_20": 0.21234567, "recall_all_at_20": 0.15184787})
    registry.promote_if_better("two_tower", version, "val_recall_at_20")
    for width in (80, 100, 140):
        monkeypatch.setattr(display.console, "width", width)
        code, out, err = growth(monkeypatch, capsys, "models", "list")
        assert code == 0, err
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= width
        cells = [line.split("│")[6].strip() for line in out.splitlines() if "│" in line]
        assert "recall_all_at_20=0.1518" in cells and "val_recall_at_20=0.2123" in cells


def test_list_says_what_each_version_predicts(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    """Churn versions of a 56- and a 28-day horizon looked the same in `models list`: the
    task column tells them apart ("-" where a version has no task tag)."""
    for data_end, task in ((date(2017, 5, 1), "churn within 56 days"),
                           (date(2017, 6, 1), "churn within 28 days"), (date(2017, 7, 1), None)):
        with registry.tracked_run("models-cli-test", "fit") as run:
            mlflow.log_text("weights", "model/readme.txt")
        registry.register_version("churn", run.info.run_id, "model", data_end, "/data/a",
                                  {"pr_auc": 0.5}, task=task)
    code, out, err = growth(monkeypatch, capsys, "models", "list", "churn")
    assert code == 0, err
    header = next(line for line in out.splitlines() if "version" in line)
    assert [c.strip() for c in header.split("┃")[1:4]] == ["model", "version", "task"]
    tasks = {cells[2].strip(): cells[3].strip() for line in out.splitlines()
             if (cells := line.split("│"))[1:] and cells[1].strip() == "churn"}
    assert tasks == {"v1": "churn within 56 days", "v2": "churn within 28 days", "v3": "-"}
