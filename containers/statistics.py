"""statistics: per-split feature statistics of an examples artifact (TFX's StatisticsGen).

Writes tensorflow_metadata `DatasetFeatureStatisticsList` protos in TFX's layout
(`Split-<split>/FeatureStats.pb`) and an HTML view, train against eval (statistics_view.py).

No TensorFlow and no row-by-row Python: the TFRecord framing is walked once per record (offsets
only), tfx_bsl's C++ decoder turns 50k tf.Examples at a time into Arrow record batches, and
pyarrow compute / numpy work on whole columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import SPLITS, STATS_FILE, split_folder
from tfkfp.containers.store.publish import outputs
from tfkfp.containers.views.histograms import HISTOGRAM_BUCKETS

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()

BATCH_ROWS = 50_000
QUANTILES = 10
TOP_VALUES = 20
RANK_BUCKETS = 1000  # values kept for domain checks and L-infinity distance (TFDV's default)


@dataclass(frozen=True)
class StatisticsResult:
    """What the stage measured: rows and features per split."""

    rows: dict[str, int] = field(default_factory=dict)
    features: dict[str, int] = field(default_factory=dict)


class _Feature:
    """One feature's values and value counts, gathered over batches (columns, not rows)."""

    def __init__(self) -> None:
        self.values: list = []
        self.lengths: list = []  # numpy int arrays, 0 where the feature is missing
        self.kind: str | None = None

    def add(self, array) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_null(array.type):  # no example of the batch has a value for it
            self.missing(len(array))
            return
        self.lengths.append(pc.list_value_length(array).fill_null(0).to_numpy())
        value_type = array.type.value_type
        if pa.types.is_null(value_type):
            return
        kind = (
            "INT"
            if pa.types.is_integer(value_type)
            else "FLOAT"
            if pa.types.is_floating(value_type)
            else "STRING"
        )
        if self.kind not in (None, kind):
            raise InputError(f"examples: feature has mixed types ({self.kind} and {kind})")
        self.kind = kind
        self.values.append(pc.list_flatten(array))

    def missing(self, rows: int) -> None:
        import numpy as np

        self.lengths.append(np.zeros(rows, dtype=np.int64))


def _quantile_histogram(sorted_points, count: int, stats_pb2):
    hist = stats_pb2.Histogram(type=stats_pb2.Histogram.QUANTILES)
    for low, high in zip(sorted_points[:-1], sorted_points[1:], strict=True):
        hist.buckets.add(low_value=low, high_value=high, sample_count=count / QUANTILES)
    return hist


def _common(lengths, stats_pb2):
    import numpy as np

    present = lengths[lengths > 0]
    common = stats_pb2.CommonStatistics(
        num_non_missing=len(present), num_missing=int(len(lengths) - len(present))
    )
    if len(present):
        common.min_num_values = int(present.min())
        common.max_num_values = int(present.max())
        common.tot_num_values = int(present.sum())
        common.avg_num_values = float(present.mean())
        points = np.quantile(present, np.linspace(0, 1, QUANTILES + 1)).tolist()
        common.num_values_histogram.CopyFrom(_quantile_histogram(points, len(present), stats_pb2))
    return common


def _numeric(values, common, stats_pb2):
    import numpy as np
    import pyarrow.compute as pc

    num = stats_pb2.NumericStatistics(common_stats=common)
    if len(values) == 0:
        return num
    data = values.to_numpy(zero_copy_only=False).astype(np.float64)
    finite = data[np.isfinite(data)]
    num.num_zeros = int((data == 0).sum())
    if not len(finite):
        return num
    num.min, num.max = float(finite.min()), float(finite.max())
    num.mean, num.std_dev = float(finite.mean()), float(finite.std())
    # t-digest: approximate quantiles in one linear pass (an exact sort is n log n).
    points = pc.tdigest(values, q=np.linspace(0, 1, QUANTILES + 1).tolist()).to_pylist()
    points = [num.min, *points[1:-1], num.max]
    num.median = float(points[QUANTILES // 2])
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BUCKETS, range=(num.min, num.max))
    standard = num.histograms.add(type=stats_pb2.Histogram.STANDARD)
    for i, n in enumerate(counts.tolist()):
        standard.buckets.add(low_value=edges[i], high_value=edges[i + 1], sample_count=n)
    num.histograms.append(_quantile_histogram(points, len(finite), stats_pb2))
    return num


def _string(values, common, stats_pb2):
    import pyarrow.compute as pc

    stats = stats_pb2.StringStatistics(common_stats=common)
    if len(values) == 0:
        return stats
    counts = pc.value_counts(values)
    order = pc.array_sort_indices(counts.field("counts"), order="descending")
    top = counts.take(order[:RANK_BUCKETS])  # only the ranked values become Python objects
    top_values = top.field("values").to_pylist()
    top_counts = top.field("counts").to_pylist()
    stats.unique = len(counts)
    stats.avg_length = float(pc.mean(pc.binary_length(values)).as_py())
    for rank, (value, n) in enumerate(zip(top_values, top_counts, strict=True)):
        label = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if rank < TOP_VALUES:
            stats.top_values.add(value=label, frequency=n)
        stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=label, sample_count=n)
    return stats


def split_statistics(batches, split: str):
    """A DatasetFeatureStatisticsList of one split from batches of serialized tf.Examples."""
    import numpy as np
    import pyarrow as pa
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    decoder = ExamplesToRecordBatchDecoder()
    features: dict[str, _Feature] = {}
    rows = 0
    for records in batches:
        try:
            batch = decoder.DecodeBatch(records)
        except Exception as err:  # the C++ decoder raises a bare RuntimeError/ValueError
            raise InputError(f"examples: {split} records are not tf.Examples ({err})") from None
        for name in set(features) - set(batch.schema.names):
            features[name].missing(batch.num_rows)
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if name not in features:
                features[name] = _Feature()
                if rows:
                    features[name].missing(rows)
            features[name].add(array)
        rows += batch.num_rows
        log.info("statistics: %s: %d rows decoded", split, rows)
    result = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = result.datasets.add(name=split, num_examples=rows)
    for name in sorted(features):
        feat = features[name]
        lengths = np.concatenate(feat.lengths)
        values = pa.concat_arrays(feat.values) if feat.values else pa.array([], pa.float32())
        kind = feat.kind or "STRING"
        out = dataset.features.add(type=getattr(statistics_pb2.FeatureNameStatistics, kind))
        out.path.step.append(name)
        common = _common(lengths, statistics_pb2)
        if kind == "STRING":
            out.string_stats.CopyFrom(_string(values, common, statistics_pb2))
        else:
            out.num_stats.CopyFrom(_numeric(values, common, statistics_pb2))
    return result


def run(examples: str, statistics: str, view: str) -> StatisticsResult:
    """Computes per-split statistics of an examples artifact and writes them with an HTML view.

    Args:
        examples: Examples artifact with `Split-train/` and `Split-eval/` gzip TFRecords.
        statistics: Output folder; receives `Split-<split>/FeatureStats.pb`.
        view: Output file: a self-contained HTML page (train against eval), which the KFP UI
            shows for an HTML artifact.

    Returns:
        Rows and features per split.
    """
    from tfkfp.containers.views.statistics_view import render

    for split in SPLITS:  # fail before any work
        examples_io.split_files(examples, split)
    examples_io.verify(
        examples, SPLITS, "examples", frames=False
    )  # a split emptied or changed since written (the reading below checks the framing)
    log.info("statistics: computing %s statistics of %s", "/".join(SPLITS), examples)
    result = StatisticsResult()
    by_split = {}
    for split in SPLITS:
        by_split[split] = split_statistics(
            examples_io.split_batches(examples, split, BATCH_ROWS), split
        )
        dataset = by_split[split].datasets[0]
        if not dataset.num_examples:
            folder = storage.join(examples, split_folder(split))
            raise InputError(f"examples: the '{split}' split has no rows ({folder})")
        result.rows[split] = dataset.num_examples
        result.features[split] = len(dataset.features)
    html = render(by_split)
    with outputs() as out:  # the statistics and their view: both or neither
        stats_tmp = out.folder(statistics, "statistics")
        for split, stats in by_split.items():
            os.makedirs(os.path.join(stats_tmp, split_folder(split)))
            with open(os.path.join(stats_tmp, split_folder(split), STATS_FILE), "wb") as fh:
                fh.write(stats.SerializeToString())
        out.file(view, html, "view")
    events.result(
        "statistics",
        "%s",
        ", ".join(f"{k}={v} rows" for k, v in result.rows.items()),
        summary="rows " + events.figures(result.rows),
        rows=result.rows,
        features=result.features,
    )
    return result
