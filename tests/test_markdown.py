"""The Markdown reports render names literally (the KFP UI reads `_` and `*` as emphasis).

Rendered with markdown-it-py (CommonMark plus GFM tables), the rules the UI's renderer
(markdown-to-jsx) follows for emphasis, backslash escapes and table cells.
"""

import re

import pytest

from tests.helpers import markdown_html
from tfkfp.containers import tuner, validate
from tfkfp.containers.evaluation import report as eval_report
from tfkfp.containers.views import markdown

NAMES = ["sparse_categorical_accuracy", "val_loss", "a*b*c", "x|y", "<b>bold</b>", "__init__"]


def _text(html: str) -> str:
    """The visible text of rendered HTML (tags dropped, entities decoded)."""
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


@pytest.mark.parametrize("name", NAMES)
def test_escape_and_code_show_text_literally(name):
    for md in (markdown.escape(name), markdown.code(name)):
        html = markdown_html(md)
        assert "<em>" not in html and "<strong>" not in html and "<b>" not in html
        assert _text(html).strip() == name
    cell = markdown_html(f"| h |\n|---|\n| {markdown.escape(name)} | \n")
    assert _text(cell).split() == ["h", name]
    cell = markdown_html(f"| h |\n|---|\n| {markdown.code(name, in_table=True)} | \n")
    assert _text(cell).split() == ["h", name]


def _evaluation(**overrides):
    fields = dict(
        blessed=False,
        reason="Not blessed: sparse_categorical_accuracy below 0.9 on island=Biscoe_1.",
        candidate="/tmp/run_1/model",
        baseline=None,
        baseline_note="no baseline_from given",
        data="/tmp/run_1/examples",
        metrics={"sparse_categorical_accuracy": 0.8, "example_count": 50.0},
        baseline_metrics={},
        slices={
            "Overall": {"sparse_categorical_accuracy": {"candidate": 0.8}},
            "island=Biscoe_1": {"sparse_categorical_accuracy": {"candidate": 0.7}},
        },
        thresholds=[
            {
                "metric": "sparse_categorical_accuracy",
                "slices": "every slice",
                "kind": "value",
                "threshold": {"lowerBound": 0.9},
                "result": "fail: island=Biscoe_1",
            }
        ],
        failures=[
            {
                "slice": "island=Biscoe_1",
                "metric": "sparse_categorical_accuracy",
                "is_diff": False,
                "value": 0.7,
                "threshold": {"valueThreshold": {"lowerBound": 0.9}},
                "message": "",
            }
        ],
        classification={"categories": ["big_tip", "no_tip"], "matrix": [[1, 0], [0, 1]]},
    )
    return eval_report.Evaluation(**{**fields, **overrides})


def _reports():
    result = tuner.TunerResult(
        objective="val_sparse_categorical_accuracy",
        direction="max",
        best_score=0.9,
        best_values={"learning_rate": 0.01, "hidden_units": 8},
        trials=[
            tuner.Trial(
                "trial_0", "COMPLETED", {"learning_rate": 0.01, "hidden_units": 8}, 0.9, 1.0
            )
        ],
        max_trials=1,
    )
    invalid = validate.ValidateResult(
        valid=False, anomalies={"eval": {"trip_miles": "Out-of-range values: *x* | y_z"}}
    )
    return {
        "evaluator": eval_report.render_markdown(_evaluation()),
        "tuner": tuner.render_markdown(result),
        "validate": validate.markdown(invalid),
    }


@pytest.mark.parametrize("stage", ["evaluator", "tuner", "validate"])
def test_reports_have_no_accidental_emphasis(stage):
    text = _text(markdown_html(_reports()[stage]))
    html = markdown_html(_reports()[stage])
    # the only emphasis a report means: bold verdicts and row labels
    assert "<em>" not in html
    if stage == "evaluator":
        assert "sparse_categorical_accuracy" in text and "island=Biscoe_1" in text
        assert "big_tip" in text and "/tmp/run_1/model" in text
        assert "Not blessed: sparse_categorical_accuracy below 0.9 on island=Biscoe_1." in text
    elif stage == "tuner":
        assert "val_sparse_categorical_accuracy" in text and "hidden_units" in text
        assert "max_trials" in text and "trial_0" in text
    else:
        assert "trip_miles" in text and "Out-of-range values: *x* | y_z" in text
