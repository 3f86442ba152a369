"""The HTML pages for the KFP UI, opened in a real headless Chromium.

Each page is screenshotted (kept in build/screenshots/ for a look) and checked for what was
painted: coloured chart pixels, SVG in the DOM, metric names as text. Chromium runs with every
request sent to a dead proxy, so a page that needed the network would show nothing.
"""

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO
from tfkfp.containers.views import charts

SCREENSHOTS = REPO / "build" / "screenshots"


def _painted(png: Path) -> int:
    """Pixels of the first series' blue (bars, lines, dots); text, guides and notes are not."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    return sum(1 for r, _, b in image.getdata() if b - r > 60)


def _look(chromium, page: Path, name: str, tmp_path: Path) -> tuple[str, int]:
    png = chromium.screenshot(str(page), tmp_path / f"{name}.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENSHOTS / f"{name}.png")
    dom = chromium.dump_dom(str(page))
    return dom, _painted(png)


def _self_contained(page: str) -> None:
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "fetches something"


@pytest.mark.slow  # the fast tier keeps test_slice_chart_in_a_browser
def test_training_curves_in_a_browser(chromium, trained, tmp_path):
    page = Path(trained.curves)
    _self_contained(page.read_text())
    dom, painted = _look(chromium, page, "trainer_curves", tmp_path)
    assert dom.count("<svg") == 2
    for text in ("Training curves", "loss", "sparse_categorical_accuracy", "train", "validation"):
        assert text in dom
    assert painted > 500, painted


@pytest.mark.slow  # the fast tier keeps test_slice_chart_in_a_browser
def test_no_curves_page_in_a_browser(chromium, tmp_path):
    page = tmp_path / "empty.html"
    charts.write(str(page), charts.training_curves(str(tmp_path / "no_logs")))
    dom, painted = _look(chromium, page, "trainer_no_curves", tmp_path)
    assert "No training curves were logged" in dom and "<svg" not in dom
    assert painted == 0


REPORT = {
    "blessed": False,
    "reason": "Not blessed: 1 threshold check(s) failed.",
    "slices": {
        "Overall": {
            "accuracy": {"candidate": 0.91, "baseline": 0.93, "diff": -0.02},
            "example_count": {"candidate": 84.0, "baseline": 84.0},
        },
        "payment_type=Cash": {
            "accuracy": {"candidate": 0.95, "baseline": 0.94},
            "example_count": {"candidate": 50.0, "baseline": 50.0},
        },
        "payment_type=Credit Card": {
            "accuracy": {"candidate": 0.78, "baseline": 0.9},
            "example_count": {"candidate": 34.0, "baseline": 34.0},
        },
    },
    "thresholds": [
        {
            "metric": "accuracy",
            "slices": "Overall",
            "kind": "value",
            "threshold": {"lowerBound": 0.8},
            "result": "pass",
        },
        {
            "metric": "accuracy",
            "slices": "Overall",
            "kind": "change",
            "threshold": {"absolute": -0.01, "direction": "HIGHER_IS_BETTER"},
            "result": "FAIL",
        },
    ],
}


def test_slice_chart_in_a_browser(chromium, tmp_path):
    page = tmp_path / "slices.html"
    charts.write(str(page), charts.slice_charts(REPORT))
    _self_contained(page.read_text())
    dom, painted = _look(chromium, page, "evaluator_slices", tmp_path)
    assert dom.count("<svg") == 2  # one chart per metric
    for text in ("accuracy", "example_count", "candidate", "baseline", "payment_type=Cash"):
        assert text in dom
    assert "lower bound 0.8 (Overall)" in dom  # the threshold, drawn and named
    assert "Not blessed" in dom
    assert painted > 500, painted


@pytest.mark.slow  # the fast tier keeps test_slice_chart_in_a_browser
def test_tuner_chart_in_a_browser(chromium, tmp_path):
    trials = [
        {"trial_id": "0", "status": "COMPLETED", "score": 0.91, "values": {"units": 8}},
        {"trial_id": "1", "status": "FAILED", "score": None, "values": {"units": 64}},
        {"trial_id": "2", "status": "COMPLETED", "score": 0.95, "values": {"units": 16}},
    ]
    page = tmp_path / "trials.html"
    charts.write(str(page), charts.tuner_trials(trials, "val_accuracy", "max"))
    dom, painted = _look(chromium, page, "tuner_trials", tmp_path)
    assert "<svg" in dom and "val_accuracy per trial" in dom
    assert "trial 2" in dom and "FAILED" in dom and "best 0.95" in dom
    assert painted > 500, painted


@pytest.mark.slow  # the fast tier keeps test_slice_chart_in_a_browser
def test_undefined_metrics_are_named_not_drawn(chromium, tmp_path):
    """TFMA gives NaN where a metric is undefined (precision of a slice without a predicted
    positive); pygal cannot draw NaN, so the page names those points instead."""
    nan = float("nan")
    report = {
        "blessed": True,
        "slices": {
            "Overall": {"precision": {"candidate": 0.7}},
            "trip_start_hour=3": {"precision": {"candidate": nan}},
            "trip_start_hour=4": {"precision": {"candidate": float("inf")}},
        },
    }
    page = tmp_path / "slices.html"
    charts.write(str(page), charts.slice_charts(report))
    dom, painted = _look(chromium, page, "evaluator_undefined", tmp_path)
    assert "Not drawn, undefined (NaN or infinite): candidate at trip_start_hour=3; " in dom
    assert "candidate at trip_start_hour=4" in dom and painted > 100, painted
    curves = charts.line_chart("loss", [1, 2], {"train": [0.5, nan]}, "epoch")
    assert "<svg" in curves and "train at 2" in curves


def test_kfp_metrics_leave_out_undefined_values():
    from tfkfp.containers.evaluation.report import Evaluation

    result = Evaluation(
        blessed=True, reason="", candidate="m", baseline=None, baseline_note="", data="d",
        metrics={"auc": 0.8, "precision": float("nan"), "lift": float("inf")},
        baseline_metrics={}, slices={}, thresholds=[], failures=[], classification=None,
    )  # fmt: skip
    assert result.ui_metrics() == {"auc": 0.8}


def test_slice_metrics_name_every_number_as_mlflow_takes_them():
    from tfkfp.containers.evaluation.report import Evaluation

    slices = {
        "Overall": {"auc": {"candidate": 0.8, "baseline": 0.7, "diff": 0.1}},
        "island=Biscoe; sex=*": {"auc": {"candidate": float("nan")}, "n": {"candidate": 3}},
    }
    result = Evaluation(
        blessed=False, reason="", candidate="m", baseline="b", baseline_note="", data="d",
        metrics={"auc": 0.8}, baseline_metrics={"auc": 0.7}, slices=slices, thresholds=[],
        failures=[], classification=None,
    )  # fmt: skip
    assert result.slice_metrics() == {
        "blessed": 0.0,
        "Overall/auc": 0.8,
        "Overall/auc/baseline": 0.7,
        "Overall/auc/diff": 0.1,
        "island_Biscoe_ sex__/n": 3.0,
    }
