"""The evaluator's reading of TFMA's output and its report, on a stored TFMA output (no Beam).

tests/data/tfma_penguins/ holds one real TFMA run (tests/helpers/make_tfma_fixture.py wrote it): the
trained penguin model against the one-step baseline, an example-count threshold on every
slice (the 9-example island fails it), accuracy value and change thresholds on Overall.
"""

import copy
import json
from pathlib import Path

import pytest

from tfkfp.containers import evaluator
from tfkfp.containers.evaluation import checks as eval_checks
from tfkfp.containers.evaluation import report as eval_report
from tfkfp.containers.evaluation.report import CANDIDATE, Evaluation
from tfkfp.containers.runtime import InputError

FIXTURE = Path(__file__).parent / "data" / "tfma_penguins"
OUTPUT = str(FIXTURE / "evaluation")


@pytest.fixture(scope="module")
def stored() -> dict:
    """What the evaluator made of this output when it was written."""
    return json.loads((FIXTURE / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def config():
    return eval_checks.parse_eval_config((FIXTURE / "eval_config.json").read_text())


def _rows(config, failures, has_baseline=True) -> list[dict]:
    rows = eval_report.threshold_rows(config, eval_checks.check_metrics(config))
    eval_report.judge_thresholds(rows, failures, has_baseline)
    return rows


def test_slices_overall_first_with_candidate_baseline_and_diff(stored):
    slices = eval_report.read_slices(OUTPUT, CANDIDATE)
    assert list(slices) == ["Overall", "island=0", "island=1", "island=2"]
    assert slices == stored["slices"]
    for table in slices.values():
        for values in table.values():
            assert values["diff"] == pytest.approx(values["candidate"] - values["baseline"])
    counts = [slices[s]["example_count"]["candidate"] for s in list(slices)[1:]]
    assert sum(counts) == slices["Overall"]["example_count"]["candidate"]


def test_validation_names_the_failing_slice_metric_and_threshold():
    ok, failures = eval_report.read_validation(OUTPUT)
    assert ok is False
    [failure] = failures
    assert failure["slice"] == "island=2" and failure["metric"] == "example_count"
    assert failure["is_diff"] is False and failure["value"] == 9.0
    assert failure["threshold"] == {"valueThreshold": {"lowerBound": 20.0}}


def test_threshold_rows_judged_and_the_verdict(config, stored):
    _, failures = eval_report.read_validation(OUTPUT)
    rows = _rows(config, failures)
    assert rows == stored["thresholds"]
    assert [(r["metric"], r["kind"], r["result"]) for r in rows] == [
        ("example_count", "value", "fail: island=2"),
        ("sparse_categorical_accuracy", "value", "pass"),
        ("sparse_categorical_accuracy", "change", "pass"),
    ]
    assert evaluator.bless(rows, False, failures) == (
        False,
        "Not blessed: 1 threshold check(s) failed.",
    )
    # Without a baseline the change row is skipped; with nothing failed, blessed.
    skipped = _rows(config, [], has_baseline=False)
    assert skipped[2]["result"] == "skipped (no baseline)"
    assert evaluator.bless(skipped, True, []) == (
        True,
        "Blessed: all 2 thresholds pass on every slice.",
    )
    only_change = [copy.deepcopy(skipped[2])]
    assert evaluator.bless(only_change, True, [])[1].startswith("Blessed: only change")
    assert evaluator.bless([], True, [])[1].startswith("Blessed: no thresholds")


def test_confusion_matrix_with_class_names_from_the_label_vocabulary(stored):
    model = str(FIXTURE / "model")
    found = eval_report.read_classification(OUTPUT, model, "species", 3)
    assert found == stored["classification"]
    assert found["categories"] == ["Adelie", "Gentoo", "Chinstrap"]
    assert sum(map(sum, found["matrix"])) == stored["metrics"]["example_count"]
    # No vocabulary named after the label: class ids.
    assert eval_report.read_classification(OUTPUT, model, "other", 3)["categories"] == [
        "0",
        "1",
        "2",
    ]


def test_markdown_report_and_json(tmp_path, stored):
    evaluation = Evaluation(**stored)
    md = eval_report.render_markdown(evaluation)
    assert md.startswith("# Evaluation: NOT BLESSED\n\nNot blessed: 1 threshold check(s) failed.")
    assert f"- Baseline: `{stored['baseline']}` (baseline model artifact)" in md
    assert "| example\\_count | every slice | value: ≥ 20 | fail: island=2 |" in md
    assert "| sparse\\_categorical\\_accuracy | Overall | change: diff ≥ -0.05 | pass |" in md
    assert "| island=2 | example\\_count | 9 | ≥ 20 |" in md  # the failures table
    assert "Each cell: candidate (baseline, diff)." in md
    assert "| Overall | 84 (84, +0) | 1 (0.6429, +0.3571) |" in md
    assert "| **Adelie** | 41 | 0 | 0 |" in md
    assert json.loads(evaluation.to_json()) == {**stored, "slice_note": ""}
    # No baseline: plain cells, and the report says change thresholds were skipped.
    alone = Evaluation(**{**stored, "baseline": None, "baseline_note": "no baseline given"})
    md = eval_report.render_markdown(alone)
    assert "- Baseline: none (no baseline given); change thresholds skipped" in md
    assert "| Overall | 84 | 1 |" in md


def test_slices_named_through_the_model_vocabulary():
    """TFMA sliced the transformed island (ids); the model's assets/island names them."""
    from tfkfp.containers.evaluation.slices import SliceNames

    names = SliceNames(str(FIXTURE / "model"), ["island"], ["island", "sex", "species"])
    slices = eval_report.read_slices(OUTPUT, CANDIDATE, names)
    assert [s for s in slices if s != "Overall"] == [
        "island=Biscoe",
        "island=Dream",
        "island=Torgersen",
    ]
    _, failures = eval_report.read_validation(OUTPUT, names)
    assert [f["slice"] for f in failures] == ["island=Torgersen"]
    assert names.note() == ""


def test_blessing_json_read_back_as_written(tmp_path, stored):
    written = Evaluation(**stored)
    path = written.write(str(tmp_path))
    assert path == str(tmp_path / "blessing.json")
    assert Evaluation.read(str(tmp_path)) == written
    assert Evaluation.read_if_present(str(tmp_path / "none")) is None
    assert Evaluation.read_if_present(None) is None


@pytest.mark.parametrize(
    "text, detail",
    [
        ("{not json", ""),
        ("[1, 2]", " (expected an object, got list)"),
        ('{"blessed": true}', " (no 'reason')"),
        ("BLESSED", ""),
    ],
)
def test_blessing_json_damaged_named_in_one_line(tmp_path, text, detail):
    (tmp_path / "blessing.json").write_text(text)
    with pytest.raises(InputError) as err:
        Evaluation.read(str(tmp_path))
    path = tmp_path / "blessing.json"
    assert str(err.value) == f"blessing: {path} is not the evaluator's blessing JSON{detail}"


def test_blessing_json_field_of_another_type_named(tmp_path, stored):
    (tmp_path / "blessing.json").write_text(json.dumps({**stored, "blessed": "yes"}))
    with pytest.raises(InputError, match=r"\('blessed' is str, expected bool\)$"):
        Evaluation.read(str(tmp_path), "infra_blessing")
    with pytest.raises(InputError, match=r"^blessing: no blessing.json in "):
        Evaluation.read(str(tmp_path / "elsewhere"))
