"""validate: anomalies of each split's statistics against the schema (TFX's ExampleValidator).

Checks per split (tensorflow_metadata anomaly types, as TFDV names them): missing and unexpected
features, type, presence (min_fraction, min_count), values per example (value_count, or a
fixed shape of 1), string domains (unexpected values among the ranked values), int and float
domains (min/max). Then train/eval skew (the schema's `skew_comparator`) and drift of train
against a previous statistics artifact or location (`drift_comparator`), with TFDV's
distances: L-infinity for categorical features (largest difference of the normalized value
frequencies), Jensen-Shannon divergence for numeric ones (over the two standard histograms
put onto common buckets, mass spread uniformly inside a bucket; log base 2, so 0..1).

Why not evidently for drift: it computes drift from the raw rows (pandas frames of both
datasets), not from saved statistics, so a previous run's data would have to be read again;
its tests and thresholds are not the schema comparators TFX users already write; and it pulls
scikit-learn, scipy, plotly and nltk into an image that has 10 MB of room left. The two
distances are a few lines of numpy over the statistics we already keep.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import statistics_io, storage
from tfkfp.containers.store.layout import ANOMALIES_FILE, SPLITS, load_schema, split_folder
from tfkfp.containers.store.publish import outputs
from tfkfp.containers.views.histograms import rebucket
from tfkfp.containers.views.markdown import code, escape

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()

_STATS_TYPES = {"INT": "INT", "FLOAT": "FLOAT", "BYTES": "STRING"}  # schema type -> stats type


@dataclass(frozen=True)
class ValidateResult:
    """The verdict: valid, and the anomalies found as {split: {feature: description}}."""

    valid: bool
    anomalies: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self, limit: int = 3) -> str:
        """One line: `valid`, or the anomaly count and the first few (split, feature, what)."""
        found = [(s, n, t) for s, a in self.anomalies.items() for n, t in a.items()]
        if not found:
            return "valid"
        shown = "; ".join(f"{n!r} in {s}: {t.rstrip('.')}" for s, n, t in found[:limit])
        more = f"; and {len(found) - limit} more" if len(found) > limit else ""
        return f"{len(found)} anomalies against the schema: {shown}{more}"


class _Found:
    """Anomalies of one split, gathered into an Anomalies proto."""

    def __init__(self, schema) -> None:
        from tensorflow_metadata.proto.v0 import anomalies_pb2

        self.pb2 = anomalies_pb2
        self.proto = anomalies_pb2.Anomalies(
            anomaly_name_format=anomalies_pb2.Anomalies.SERIALIZED_PATH
        )
        self.proto.baseline.CopyFrom(schema)

    def add(self, feature: str, kind: str, short: str, description: str) -> None:
        kind_id = self.pb2.AnomalyInfo.Type.Value(kind)
        if feature in self.proto.anomaly_info and any(
            r.type == kind_id for r in self.proto.anomaly_info[feature].reason
        ):
            return  # found twice (against the schema and against the previous run)
        info = self.proto.anomaly_info[feature]
        info.path.step[:] = [feature]
        info.severity = self.pb2.AnomalyInfo.ERROR
        info.reason.add(
            type=self.pb2.AnomalyInfo.Type.Value(kind),
            short_description=short,
            description=description,
        )
        info.short_description = "; ".join(r.short_description for r in info.reason)
        info.description = " ".join(r.description for r in info.reason)


def _by_name(dataset) -> dict:
    return {(f.path.step[0] if f.path.step else f.name): f for f in dataset.features}


def _common(feat):
    return getattr(feat, feat.WhichOneof("stats")).common_stats


def _string_domain(schema, feature) -> set[str] | None:
    if feature.HasField("string_domain"):
        return set(feature.string_domain.value)
    if feature.domain:
        for domain in schema.string_domain:
            if domain.name == feature.domain:
                return set(domain.value)
        raise InputError(
            f"schema: feature {feature.name!r} names unknown domain {feature.domain!r}"
        )
    return None


def _check_feature(found: _Found, schema, feature, stat, num_examples: int) -> None:
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    name = feature.name
    want = _STATS_TYPES.get(schema_pb2.FeatureType.Name(feature.type))
    got = statistics_pb2.FeatureNameStatistics.Type.Name(stat.type)
    if want and got != want and _common(stat).num_non_missing:  # no values: no type to check
        found.add(name, "UNEXPECTED_DATA_TYPE", "Unexpected data type",
                  f"Expected {want} values, got {got}.")  # fmt: skip
        return
    common = _common(stat)
    present = common.num_non_missing
    if feature.presence.min_fraction and num_examples:
        fraction = present / num_examples
        if fraction < feature.presence.min_fraction:
            found.add(name, "FEATURE_TYPE_LOW_FRACTION_PRESENT", "Column missing in examples",
                      f"Present in {fraction:.2%} of examples, the schema asks for at least "
                      f"{feature.presence.min_fraction:.2%}.")  # fmt: skip
    if feature.HasField("value_count"):
        low, high = feature.value_count.min, feature.value_count.max
    elif feature.shape.dim:
        low = high = 1
        for dim in feature.shape.dim:
            low = high = low * dim.size
    else:
        low, high = 0, 0
    if present and low and common.min_num_values < low:
        found.add(name, "FEATURE_TYPE_LOW_NUMBER_VALUES", "Missing values",
                  f"Some examples have {common.min_num_values} values, at least {low} expected.")  # fmt: skip
    if present and high and common.max_num_values > high:
        found.add(name, "FEATURE_TYPE_HIGH_NUMBER_VALUES", "Superfluous values",
                  f"Some examples have {common.max_num_values} values, at most {high} expected.")  # fmt: skip
    if stat.HasField("string_stats"):
        domain = _string_domain(schema, feature)
        if domain is not None:
            unexpected = [b.label for b in stat.string_stats.rank_histogram.buckets
                          if b.label not in domain]  # fmt: skip
            if unexpected:
                shown = ", ".join(repr(v) for v in unexpected[:5])
                found.add(name, "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "Unexpected string values",
                          f"Examples contain values missing from the schema: {shown}"
                          f"{' ...' if len(unexpected) > 5 else ''}.")  # fmt: skip
    elif stat.HasField("num_stats") and present:
        num = stat.num_stats
        for which, small, big in (("int_domain", "INT_TYPE_SMALL_INT", "INT_TYPE_BIG_INT"),
                                  ("float_domain", "FLOAT_TYPE_SMALL_FLOAT", "FLOAT_TYPE_BIG_FLOAT")):  # fmt: skip
            if not feature.HasField(which):
                continue
            domain = getattr(feature, which)
            if domain.HasField("min") and num.min < domain.min:
                found.add(name, small, "Out-of-range values",
                          f"Minimum {num.min:g} is below the schema's minimum {domain.min:g}.")  # fmt: skip
            if domain.HasField("max") and num.max > domain.max:
                found.add(name, big, "Out-of-range values",
                          f"Maximum {num.max:g} is above the schema's maximum {domain.max:g}.")  # fmt: skip


def check_schema(schema, dataset, found: _Found, present: dict[str, int]) -> None:
    """Adds the anomalies of one split's statistics against the schema to `found`.

    `present` counts each feature's examples over all splits: `presence.min_count` is checked
    against that, not per split (unlike TFDV), because an inferred schema's `min_count: 1`
    describes the whole data, and a feature as rare as the taxi sample's pickup_census_tract
    (1 row in 15,002) is absent from one split of a perfectly normal run: absent from a
    split's statistics, it is a dropped column only when the schema asks for it in every
    example (`min_fraction`) or when no split has it. A feature no row has (an empty column,
    inferred with `min_count: 0`, as TFDV does) is no anomaly.
    """
    stats = _by_name(dataset)
    for feature in schema.feature:
        stat = stats.get(feature.name)
        if stat is None:  # no example of this split has the feature, not even empty
            required = feature.presence.min_fraction > 0 or (
                feature.presence.min_count > 0 and feature.name not in present
            )
            if required:  # else: the schema lets it be absent here (rare, or never seen)
                found.add(feature.name, "SCHEMA_MISSING_COLUMN", "Column dropped",
                          "The feature is in the schema but absent from the data.")  # fmt: skip
            continue
        _check_feature(found, schema, feature, stat, dataset.num_examples)
        if present.get(feature.name, 0) < feature.presence.min_count:
            found.add(feature.name, "FEATURE_TYPE_LOW_NUMBER_PRESENT", "Column rarely present",
                      f"Present in {present.get(feature.name, 0)} examples, at least "
                      f"{feature.presence.min_count} expected.")  # fmt: skip
    for name in sorted(set(stats) - {f.name for f in schema.feature}):
        found.add(name, "SCHEMA_NEW_COLUMN", "New column",
                  "The feature is in the data but not in the schema.")  # fmt: skip


def _frequencies(stat) -> dict[str, float]:
    buckets = stat.string_stats.rank_histogram.buckets
    total = sum(b.sample_count for b in buckets) or 1.0
    return {b.label: b.sample_count / total for b in buckets}


def l_infinity(a, b) -> float:
    """TFDV's L-infinity distance of two categorical features' value frequencies."""
    pa, pb = _frequencies(a), _frequencies(b)
    return max((abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in pa.keys() | pb.keys()), default=0.0)


def _histogram(stat):
    for hist in stat.num_stats.histograms:
        if hist.type == hist.STANDARD:
            return [(b.low_value, b.high_value, b.sample_count) for b in hist.buckets]
    return []


def jensen_shannon(a, b) -> float:
    """Jensen-Shannon divergence (log base 2) of two numeric features' histograms."""
    import numpy as np

    ha, hb = _histogram(a), _histogram(b)
    if not ha or not hb:
        return 0.0
    edges = np.unique([x for low, high, _ in ha + hb for x in (low, high)])
    if len(edges) < 2:
        return 0.0
    p, q = rebucket(ha, edges), rebucket(hb, edges)
    p, q = p / (p.sum() or 1.0), q / (q.sum() or 1.0)
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return (kl(p) + kl(q)) / 2


def compare(schema, control, treatment, which: str, found: _Found, label: str) -> None:
    """Skew (which='skew_comparator') or drift ('drift_comparator') of treatment vs control."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    before, after = _by_name(control), _by_name(treatment)
    for feature in schema.feature:
        if not feature.HasField(which):
            continue
        comparator = getattr(feature, which)
        name = feature.name
        if name not in before and name not in after:
            raise InputError(f"schema: {which} on feature {name!r}, which is absent from the data")
        if name not in before:
            found.add(name, "COMPARATOR_CONTROL_DATA_MISSING", f"{label}: no baseline",
                      f"The feature is absent from the {label} baseline.")  # fmt: skip
            continue
        if name not in after:
            continue  # already reported as a dropped column
        a, b = before[name], after[name]
        if _type_changed(a, b):
            kinds = _type_names(a, b)
            found.add(name, "UNEXPECTED_DATA_TYPE", f"{label}: type changed",
                      f"The feature holds {kinds[0]} values in the {label} baseline and "
                      f"{kinds[1]} values now; its {which} cannot compare them.")  # fmt: skip
            continue
        string = statistics_pb2.FeatureNameStatistics.STRING
        for kind, applies in (("infinity_norm", b.type == string),
                              ("jensen_shannon_divergence", b.type != string)):  # fmt: skip
            if comparator.HasField(kind) and not applies and _common(b).num_non_missing:
                log.warning("validate: %s on feature %r: %s does not apply to %s values, "
                            "not checked", which, name, kind, _type_names(a, b)[1])  # fmt: skip
        if comparator.HasField("infinity_norm") and a.type == b.type == string:
            distance, limit = l_infinity(a, b), comparator.infinity_norm.threshold
            if distance > limit:
                found.add(name, "COMPARATOR_L_INFTY_HIGH", f"High {label}",
                          f"The L-infinity distance {label} is {distance:.4g} "
                          f"(threshold {limit:g}).")  # fmt: skip
        if comparator.HasField("jensen_shannon_divergence") and a.type == b.type != string:
            distance = jensen_shannon(a, b)
            limit = comparator.jensen_shannon_divergence.threshold
            if distance > limit:
                found.add(name, "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", f"High {label}",
                          f"The Jensen-Shannon divergence {label} is {distance:.4g} "
                          f"(threshold {limit:g}).")  # fmt: skip


def _type_changed(a, b) -> bool:
    """Whether two statistics of a feature hold values of different types (both have values)."""
    return a.type != b.type and bool(_common(a).num_non_missing and _common(b).num_non_missing)


def _type_names(a, b) -> tuple[str, str]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = statistics_pb2.FeatureNameStatistics.Type.Name
    return name(a.type), name(b.type)


def feature_set_changes(previous, current, found: _Found) -> None:
    """Features gone, new or of another type since the previous statistics.

    Not a TFDV check: with a schema inferred on every run, a renamed column is in the schema
    under its new name (and a column whose values changed type has the new type), so only the
    previous run's statistics can tell that it changed.
    """
    before, after = _by_name(previous), _by_name(current)
    for name in sorted(set(before) & set(after)):
        if _type_changed(before[name], after[name]):
            kinds = _type_names(before[name], after[name])
            found.add(name, "UNEXPECTED_DATA_TYPE", "Type changed since the previous run",
                      f"The feature holds {kinds[1]} values, {kinds[0]} in the previous "
                      "statistics.")  # fmt: skip
    for name in sorted(set(before) - set(after)):
        found.add(name, "SCHEMA_MISSING_COLUMN", "Column gone since the previous run",
                  "The feature is in the previous statistics but absent from the data.")  # fmt: skip
    for name in sorted(set(after) - set(before)):
        found.add(name, "SCHEMA_NEW_COLUMN", "New since the previous run",
                  "The feature is in the data but not in the previous statistics.")  # fmt: skip


def verdict(result: ValidateResult) -> str:
    """One sentence: `Valid: no anomalies in train, eval.` or `Not valid: 3 anomalies.`"""
    if result.valid:
        return "Valid: no anomalies in " + ", ".join(result.anomalies) + "."
    return f"Not valid: {sum(len(v) for v in result.anomalies.values())} anomalies."


def markdown(result: ValidateResult) -> str:
    """The report for the KFP UI: the verdict and one table row per anomaly."""
    head, _, rest = verdict(result).partition(":")
    lines = ["# Data validation", "", f"**{head}**:{escape(rest)}"]
    if result.valid:
        return "\n".join(lines) + "\n"
    lines += ["", "| split | feature | anomaly |", "|---|---|---|"]
    for split, found in result.anomalies.items():
        for feature, text in found.items():
            lines.append(f"| {escape(split)} | {code(feature, in_table=True)} | {escape(text)} |")
    return "\n".join(lines) + "\n"


def run(
    statistics: str,
    schema: str,
    anomalies: str,
    report: str,
    previous_statistics: str | None = None,
    previous_statistics_uri: str = "",
    fail_on_anomalies: bool = False,
) -> ValidateResult:
    """Validates per-split statistics against a schema, train/eval skew and drift.

    Args:
        statistics: Statistics artifact (`Split-<split>/FeatureStats.pb`).
        schema: Schema artifact folder or schema.pbtxt (ingest's, or a curated one).
        anomalies: Output folder; receives `Split-<split>/SchemaDiff.pb` (Anomalies).
        report: Output file: the Markdown report.
        previous_statistics: A previous run's statistics artifact, for drift.
        previous_statistics_uri: Or its location (local, KFP mount, gs://, s3://).
        fail_on_anomalies: Fail the run (exit 2) on anomalies instead of returning valid=False.

    Returns:
        The verdict and the anomalies per split.
    """
    if previous_statistics and previous_statistics_uri:
        raise InputError(
            "previous_statistics_uri: give previous_statistics or previous_statistics_uri, not both"
        )
    the_schema = load_schema(schema)
    current = {split: statistics_io.load(statistics, split).datasets[0] for split in SPLITS}
    log.info("validate: %s statistics against %d schema features", "/".join(current),
             len(the_schema.feature))  # fmt: skip
    previous = None
    if previous_statistics:
        previous = statistics_io.load(previous_statistics, "train", "previous_statistics").datasets[
            0
        ]
    elif previous_statistics_uri:
        storage.check(previous_statistics_uri, "previous_statistics_uri")
        previous = statistics_io.load(previous_statistics_uri, "train", "previous_statistics_uri")
        previous = previous.datasets[0]
    found = {split: _Found(the_schema) for split in SPLITS}
    present: dict[str, int] = {}
    for dataset in current.values():
        for name, stat in _by_name(dataset).items():
            present[name] = present.get(name, 0) + _common(stat).num_non_missing
    for split in SPLITS:
        check_schema(the_schema, current[split], found[split], present)
    compare(the_schema, current["train"], current["eval"], "skew_comparator", found["eval"], "skew")
    if previous is not None:
        compare(the_schema, previous, current["train"], "drift_comparator", found["train"], "drift")
        feature_set_changes(previous, current["train"], found["train"])
    elif any(f.HasField("drift_comparator") for f in the_schema.feature):
        log.info("validate: drift comparators set but no previous statistics given: no drift check")
    result = ValidateResult(
        valid=not any(f.proto.anomaly_info for f in found.values()),
        anomalies={
            split: {name: info.description for name, info in f.proto.anomaly_info.items()}
            for split, f in found.items()
        },
    )
    with outputs() as out:  # the anomalies and their report: both or neither
        tmp = out.folder(anomalies, "anomalies")
        for split, f in found.items():
            os.makedirs(os.path.join(tmp, split_folder(split)))
            with open(os.path.join(tmp, split_folder(split), ANOMALIES_FILE), "wb") as fh:
                fh.write(f.proto.SerializeToString())
        out.file(report, markdown(result), "report")
    count = sum(len(v) for v in result.anomalies.values())
    events.result(
        "validate",
        "%s (%d anomalies)",
        "valid" if result.valid else "NOT valid",
        count,
        summary=f"{'valid' if result.valid else 'NOT valid'}, {count} anomalies",
        valid=result.valid,
        anomalies=count,
        verdict=verdict(result),
        anomalies_line=result.summary(),
    )
    if fail_on_anomalies and not result.valid:
        raise InputError(f"statistics: {result.summary(limit=1)} (report: {report})")
    return result
