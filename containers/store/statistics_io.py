"""Reading a statistics artifact: one split's DatasetFeatureStatisticsList (`FeatureStats.pb`).

The statistics stage writes these; validate (and anything else comparing statistics) reads them
here, so no stage imports another.
"""

from __future__ import annotations

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import STATS_FILE, split_folder


def load(statistics: str, split: str, what: str = "statistics"):
    """Reads one split's DatasetFeatureStatisticsList from a statistics artifact or location."""
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import statistics_pb2

    uri = storage.join(statistics, split_folder(split), STATS_FILE)
    if not storage.exists(uri, what):
        raise InputError(f"{what}: no '{split}' split statistics at {uri}")
    data = storage.read_bytes(uri, what)
    if not data:
        raise InputError(
            f"{what}: {uri} is empty (0 bytes; expected a DatasetFeatureStatisticsList)"
        )
    try:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(data)
    except DecodeError:
        raise InputError(f"{what}: {uri} is not a DatasetFeatureStatisticsList") from None
    if not stats.datasets:
        raise InputError(
            f"{what}: {uri} holds no dataset (expected the '{split}' split's statistics)"
        )
    return stats
