"""The statistics view: one self-contained HTML page, train against eval, per feature.

Why not Facets Overview: the `facets-overview` package (1.1.1) only builds Facets' own protos;
the web component that draws them (facets-jupyter.html, a Polymer bundle) ships in no PyPI,
npm or Debian package reachable here, and TFDV's notebooks load it from GitHub at view time,
which a KFP UI without internet cannot do either. So the page is built with pandas (already in
the image through tfx-bsl): `DataFrame.to_html` for the tables, plus a small inline SVG
histogram per feature. No script, no network: the KFP UI's HTML viewer (a sandboxed iframe)
and an offline browser render it as is.
"""

from __future__ import annotations

import html

_COLORS = {"train": "#1f77b4", "eval": "#ff7f0e"}
_STYLE = """
body{font-family:sans-serif;margin:16px;color:#222}
table{border-collapse:collapse;margin-bottom:24px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:middle}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.warn{color:#b00020;font-weight:bold} .legend span{margin-right:12px}
"""


def _svg_bars(series: dict[str, list[float]], labels: list[str] | None = None) -> str:
    """Grouped bars (one colour per split) of fractions, 160x40 px."""
    width, height = 160, 40
    n = max((len(v) for v in series.values()), default=0)
    if not n:
        return ""
    peak = max((max(v) for v in series.values() if v), default=0) or 1.0
    slot = width / n
    bar = slot / max(len(series), 1)
    rects = []
    for k, (split, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            h = height * v / peak
            title = html.escape(f"{split} {labels[i] if labels else i}: {v:.1%}")
            rects.append(
                f'<rect x="{i * slot + k * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{_COLORS.get(split, "#888")}"><title>{title}</title></rect>'
            )
    return f'<svg width="{width}" height="{height}" role="img">{"".join(rects)}</svg>'


def _fractions(counts: list[float]) -> list[float]:
    total = sum(counts) or 1.0
    return [c / total for c in counts]


def _rows(by_split: dict) -> tuple[list[dict], list[dict]]:
    """(numeric rows, string rows) of the tables: one row per feature and split."""
    numeric, strings = [], []
    histograms: dict[str, dict[str, list[float]]] = {}
    top: dict[str, dict[str, dict[str, int]]] = {}
    for split, stats in by_split.items():
        dataset = stats.datasets[0]
        for feat in dataset.features:
            name = feat.path.step[0] if feat.path.step else feat.name
            which = feat.WhichOneof("stats")
            common = getattr(feat, which).common_stats
            total = common.num_non_missing + common.num_missing
            row = {
                "feature": name,
                "split": split,
                "count": common.num_non_missing,
                "missing": f"{common.num_missing / total:.1%}" if total else "-",
            }
            if which == "num_stats":
                s = feat.num_stats
                standard = next((h for h in s.histograms if h.type == 0), None)
                buckets = [(b.low_value, b.high_value, b.sample_count) for b in standard.buckets]
                histograms.setdefault(name, {})[split] = buckets
                row.update(
                    mean=f"{s.mean:.4g}",
                    std_dev=f"{s.std_dev:.4g}",
                    zeros=f"{s.num_zeros / max(common.tot_num_values, 1):.1%}",
                    min=f"{s.min:.4g}",
                    median=f"{s.median:.4g}",
                    max=f"{s.max:.4g}",
                )
                numeric.append(row)
            else:
                s = feat.string_stats
                top.setdefault(name, {})[split] = {
                    b.label: b.sample_count for b in s.rank_histogram.buckets[:10]
                }
                row.update(
                    unique=s.unique,
                    top=html.escape(s.top_values[0].value) if s.top_values else "-",
                    freq_top=int(s.top_values[0].frequency) if s.top_values else 0,
                    avg_length=f"{s.avg_length:.3g}",
                )
                strings.append(row)
    for row in numeric:
        if row["split"] == next(iter(by_split)):
            row["histogram"] = _svg_bars(_common_buckets(histograms.get(row["feature"], {})))
        else:
            row["histogram"] = ""
    for row in strings:
        if row["split"] == next(iter(by_split)):
            per_split = top.get(row["feature"], {})
            labels = list(dict.fromkeys(label for d in per_split.values() for label in d))[:10]
            series = {
                sp: _fractions([d.get(lb, 0) for lb in labels]) for sp, d in per_split.items()
            }
            row["top values"] = _svg_bars(series, labels)
        else:
            row["top values"] = ""
    order = {split: i for i, split in enumerate(by_split)}
    numeric.sort(key=lambda r: (r["feature"], order[r["split"]]))
    strings.sort(key=lambda r: (r["feature"], order[r["split"]]))
    return numeric, strings


def _common_buckets(per_split: dict[str, list[tuple]]) -> dict[str, list[float]]:
    """Each split's histogram as fractions on the same 10 buckets (the splits' joint range)."""
    import numpy as np

    from tfkfp.containers.views.histograms import HISTOGRAM_BUCKETS, rebucket

    bounds = [x for buckets in per_split.values() for b in buckets for x in b[:2]]
    if not bounds:
        return {}
    edges = np.linspace(min(bounds), max(bounds), HISTOGRAM_BUCKETS + 1)
    if edges[-1] <= edges[0]:
        return {split: [1.0] for split in per_split}
    return {split: _fractions(rebucket(b, edges).tolist()) for split, b in per_split.items()}


def render(by_split: dict) -> str:
    """The HTML page of per-split DatasetFeatureStatisticsList protos ({split: proto})."""
    import pandas as pd

    numeric, strings = _rows(by_split)
    rows = ", ".join(f"{s}: {p.datasets[0].num_examples} rows" for s, p in by_split.items())
    legend = "".join(
        f'<span style="color:{_COLORS.get(s, "#888")}">&#9632; {html.escape(s)}</span>'
        for s in by_split
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feature statistics</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h2>Feature statistics</h2><p>{html.escape(rows)}</p><p class='legend'>{legend}</p>",
    ]
    for title, table in (("Numeric features", numeric), ("Categorical features", strings)):
        if table:
            frame = pd.DataFrame(table)
            parts.append(f"<h3>{title} ({frame['feature'].nunique()})</h3>")
            parts.append(frame.to_html(index=False, escape=False, classes="features", border=0))
    parts.append("</body></html>")
    return "\n".join(parts)
