"""File-layout names of the data-validation artifacts (TFX's layout), defined once.

statistics and validate read and write these. Only their names live here so far: the stages
that predate it still spell `Split-<split>` themselves (issue 15 moves them here).
"""

from __future__ import annotations

STATS_FILE = "FeatureStats.pb"  # DatasetFeatureStatisticsList, one per split (StatisticsGen)
ANOMALIES_FILE = "SchemaDiff.pb"  # Anomalies, one per split (ExampleValidator)
SCHEMA_FILE = "schema.pbtxt"


def split_folder(split: str) -> str:
    """The folder of one split inside an artifact: `Split-<split>`."""
    return f"Split-{split}"
