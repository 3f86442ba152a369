"""Pictures for the KFP UI: self-contained HTML pages of SVG charts drawn with pygal.

KFP v2 has no TensorBoard viewer, so training curves, per-slice evaluation bars and tuner scores
are `HTML` artifacts, which the KFP UI and Vertex show. Each page carries its SVG inline and no
script or font from the network: it renders offline. pygal (about 1.3 MB installed, pure Python)
was chosen over matplotlib, plotly and bokeh (32-74 MB) to keep the CPU image under its budget.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from tfkfp.containers.runtime import log

WIDTH, HEIGHT = 720, 360

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 60em; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.05em; margin-top: 1.6em; }}
p.note {{ background: #fff6d6; padding: .6em .8em; border-left: 4px solid #e0b000; }}
svg.pygal-chart {{ width: 100%; max-width: {width}px; height: auto; }}
table {{ border-collapse: collapse; font-size: .9em; }}
td, th {{ border: 1px solid #ccc; padding: .2em .6em; text-align: right; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""


def _style(marked: bool):
    """One look for every chart; `marked`: draw the major guides (thresholds) red and dashed."""
    import pygal.style

    guide = {"major_guide_stroke_color": "#d62728", "major_guide_stroke_dasharray": "6,4"}
    if not marked:  # pygal marks round values major on its own; they are not thresholds
        guide = {"major_guide_stroke_color": "#ddd", "major_guide_stroke_dasharray": "4,4"}
    return pygal.style.Style(
        background="white",
        plot_background="white",
        foreground="#333",
        foreground_strong="#111",
        foreground_subtle="#bbb",
        colors=("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"),
        font_family="system-ui, sans-serif",
        title_font_size=16,
        label_font_size=12,
        legend_font_size=13,
        major_label_font_size=12,
        guide_stroke_color="#ddd",
        **guide,
    )


def _options(marked: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Options every chart shares: no external scripts, SVG for inlining, one look."""
    return {
        "js": [],  # pygal's tooltips load a script from the network: none at view time
        "disable_xml_declaration": True,
        "style": _style(marked),
        "width": WIDTH,
        "height": HEIGHT,
        "legend_at_bottom": True,
        "print_values": False,
        **kwargs,
    }


def _finite(values: Sequence[float | None]) -> list[float | None]:
    """Values with NaN and infinities as None, which pygal leaves out (it fails on NaN)."""
    return [v if v is not None and math.isfinite(v) else None for v in values]


def _undefined(x_labels: Sequence[Any], series: dict[str, Sequence[float | None]]) -> str:
    """A line naming the points whose value is NaN or infinite (TFMA's undefined metrics)."""
    missing = [
        f"{name} at {label}"
        for name, values in series.items()
        for label, v in zip(x_labels, values, strict=False)
        if v is not None and not math.isfinite(v)
    ]
    if not missing:
        return ""
    return f"\n<p>Not drawn, undefined (NaN or infinite): {html.escape('; '.join(missing))}.</p>"


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / n
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step) + 2)]


def line_chart(
    title: str, x_labels: Sequence[Any], series: dict[str, Sequence[float | None]], x_title: str
) -> str:
    """An SVG line chart, one line per series."""
    import pygal

    chart = pygal.Line(**_options(title=title, x_title=x_title, show_dots=True, dots_size=3))
    chart.x_labels = [str(x) for x in x_labels]
    for name, values in series.items():
        chart.add(name, _finite(values))
    return chart.render(is_unicode=True) + _undefined(x_labels, series)


def bar_chart(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    lines: dict[str, float] | None = None,
) -> str:
    """An SVG bar chart, bars grouped by label; `lines` are dashed red guides, named below it."""
    import pygal

    lines = lines or {}
    values = [v for vs in series.values() for v in _finite(vs) if v is not None]
    values += list(lines.values())
    low, high = min([0.0, *values]), max([0.0, *values])
    ticks = sorted(set(_ticks(low, high)) | set(lines.values()))
    chart = pygal.Bar(
        **_options(
            marked=bool(lines),
            title=title,
            y_labels=ticks,
            y_labels_major=list(lines.values()),
            x_label_rotation=20 if len(x_labels) > 4 else 0,
        )
    )
    chart.x_labels = list(x_labels)
    for name, vs in series.items():
        chart.add(name, _finite(vs))
    svg = chart.render(is_unicode=True) + _undefined(x_labels, series)
    if lines:
        svg += f"\n<p>Dashed red line: {html.escape('; '.join(lines))}.</p>"
    return svg


def page(title: str, sections: Iterable[tuple[str, str]], note: str = "") -> str:
    """An HTML page: a title, an optional note, then (heading, SVG or HTML) sections."""
    body = [f'<p class="note">{html.escape(note)}</p>'] if note else []
    for heading, content in sections:
        body.append(f"<section><h2>{html.escape(heading)}</h2>\n{content}\n</section>")
    return PAGE.format(title=html.escape(title), body="\n".join(body), width=WIDTH)


def write(path: str, content: str) -> None:
    """Writes a page whole (a temp file renamed): a reader never sees half of it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, path)
    finally:  # never left beside the output
        if os.path.exists(tmp):
            os.remove(tmp)


# --- trainer: curves from TensorBoard event files ------------------------------------------


def read_scalars(log_dir: str) -> dict[str, dict[str, dict[int, float]]]:
    """{tag: {run: {step: value}}} of every scalar in the event files under `log_dir`.

    The run is the event file's folder relative to `log_dir` (`train`, `validation` for Keras's
    TensorBoard callback). Scalars written as tensors (TF2 summaries) and as simple values
    (TF1) are both read, with TensorBoard's own event file reader.
    """
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    scalars: dict[str, dict[str, dict[int, float]]] = {}
    for folder, _, files in os.walk(log_dir):
        for name in sorted(files):
            if "tfevents" not in name:
                continue
            run = os.path.relpath(folder, log_dir)
            run = "" if run == "." else run
            for event in event_file_loader.EventFileLoader(os.path.join(folder, name)).Load():
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        number = float(value.simple_value)
                    elif value.HasField("tensor") and not value.tensor.tensor_shape.dim:
                        try:
                            number = float(tensor_util.make_ndarray(value.tensor))
                        except (TypeError, ValueError):
                            continue  # a string or other non-numeric summary
                    else:
                        continue
                    scalars.setdefault(value.tag, {}).setdefault(run, {})[event.step] = number
    return scalars


NO_CURVES = (
    "No training curves were logged: run_fn wrote no TensorBoard scalars under model_run_dir. "
    "Pass tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir) to model.fit to get "
    "loss and metrics per epoch here."
)


def _curve_tags(scalars: dict[str, dict[str, dict[int, float]]]) -> dict[str, dict]:
    """The tags drawn as curves: Keras's per-epoch ones, else every non-eval scalar."""
    per_epoch = {t: runs for t, runs in scalars.items() if t.startswith("epoch_")}
    return per_epoch or {t: runs for t, runs in scalars.items() if not t.startswith("eval")}


def final_values(log_dir: str) -> dict[str, float]:
    """Each curve's last value, `<run>/<metric>` (`train/loss`, `validation/accuracy`): the
    trainer's scalars for KFP's Metrics artifact. {} when nothing was logged or readable."""
    import math

    from tfkfp.containers.runtime import metric_name

    try:
        scalars = read_scalars(log_dir) if os.path.isdir(log_dir) else {}
    except Exception as err:  # a corrupt event file must not fail a trained model
        log.warning("trainer: could not read TensorBoard logs under %s: %s", log_dir, err)
        return {}
    found = {}
    for tag, runs in _curve_tags(scalars).items():
        for run, values in runs.items():
            last = values[max(values)]
            if math.isfinite(last):
                found[metric_name(run or "train", tag.removeprefix("epoch_"))] = last
    return found


def training_curves(log_dir: str) -> str:
    """The trainer's page: loss and each compiled metric per epoch, train and validation."""
    try:
        scalars = read_scalars(log_dir) if os.path.isdir(log_dir) else {}
    except Exception as err:  # a corrupt event file must not fail a trained model
        log.warning("trainer: could not read TensorBoard logs under %s: %s", log_dir, err)
        return page("Training curves", [], f"The TensorBoard logs could not be read: {err}")
    chosen = _curve_tags(scalars)
    if not chosen:
        return page("Training curves", [], NO_CURVES)
    order = sorted(chosen, key=lambda t: (t != "epoch_loss" and t != "loss", t))
    sections = []
    for tag in order:
        runs = chosen[tag]
        steps = sorted({s for values in runs.values() for s in values})
        x_title = "epoch" if tag.startswith("epoch_") else "step"
        series = {(run or "values"): [runs[run].get(s) for s in steps] for run in sorted(runs)}
        name = tag.removeprefix("epoch_")
        x_labels = [s + 1 for s in steps] if x_title == "epoch" else steps
        sections.append((name, line_chart(name, x_labels, series, x_title)))
    note = ""
    if all(len({s for v in chosen[t].values() for s in v}) == 1 for t in chosen):
        note = "One epoch was logged, so each curve is a single point."
    return page("Training curves", sections, note)


# --- evaluator: per-slice bars against the baseline ----------------------------------------


def _bound(threshold: dict[str, Any]) -> dict[str, float]:
    """A value threshold's bounds as guide lines: {"lower bound": 0.8, ...}."""
    bounds = {}
    for key, label in (("lowerBound", "lower bound"), ("upperBound", "upper bound")):
        if key in threshold:
            bounds[label] = float(threshold[key])
    return bounds


def slice_charts(report: Any) -> str:
    """The evaluator's page: each metric per slice, candidate against baseline, thresholds drawn.

    Args:
        report: The evaluator's report (`slices`, `thresholds`, `blessed`, `reason`, ...), as a
            dict or a dataclass.
    """
    if dataclasses.is_dataclass(report):
        report = dataclasses.asdict(report)
    slices: dict[str, dict[str, dict[str, float]]] = report.get("slices") or {}
    names = list(slices)
    metrics = sorted({m for table in slices.values() for m in table})
    has_baseline = any("baseline" in v for table in slices.values() for v in table.values())
    sections = []
    for metric in metrics:
        series = {"candidate": [slices[s].get(metric, {}).get("candidate") for s in names]}
        if has_baseline:
            series["baseline"] = [slices[s].get(metric, {}).get("baseline") for s in names]
        lines: dict[str, float] = {}
        notes = []
        for row in report.get("thresholds") or []:
            if row.get("metric") != metric:
                continue
            where = row.get("slices", "")
            if row.get("kind") == "value":
                for label, value in _bound(row.get("threshold", {})).items():
                    lines[f"{label} {value:g} ({where})"] = value
            notes.append(
                f"{row.get('kind')} threshold on {where}: {row.get('threshold')} -> "
                f"{row.get('result', '')}"
            )
        chart = bar_chart(metric, names, series, lines)
        listing = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        sections.append((metric, chart + (f"\n<ul>{listing}</ul>" if listing else "")))
    verdict = report.get("reason") or ("Blessed" if report.get("blessed") else "Not blessed")
    note = verdict
    if report.get("slice_note"):
        note += " " + report["slice_note"]
    if not has_baseline:
        note += " No baseline: candidate only."
    if not metrics:
        note += " TFMA reported no scalar metrics."
    return page("Evaluation per slice", sections, note)


# --- tuner: score per trial ----------------------------------------------------------------


def tuner_trials(trials: Sequence[dict[str, Any]], objective: str, direction: str = "") -> str:
    """The tuner's page: each trial's score (failed trials have none), best marked."""
    scored = [t for t in trials if t.get("score") is not None]
    if not trials:
        return page("Tuner trials", [], "No trials ran.")
    labels = [f"trial {t.get('trial_id', i)}" for i, t in enumerate(trials)]
    scores = [t.get("score") for t in trials]
    lines = {}
    if scored:
        best = (min if direction == "min" else max)(t["score"] for t in scored)
        lines[f"best {best:g}"] = best
    chart = bar_chart(f"{objective} per trial", labels, {objective: scores}, lines)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(t.get('status', '')))}</td>"
        f"<td>{'' if t.get('score') is None else format(t['score'], '.4g')}</td>"
        f"<td style='text-align:left'>{html.escape(str(t.get('values', '')))}</td></tr>"
        for label, t in zip(labels, trials, strict=True)
    )
    table = (
        "<table><tr><th>trial</th><th>status</th><th>score</th><th>hyperparameters</th></tr>"
        f"{rows}</table>"
    )
    note = "" if scored else "No trial completed with a score."
    return page("Tuner trials", [(f"{objective} per trial", chart), ("Trials", table)], note)
