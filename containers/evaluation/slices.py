"""Slice names a person can read: `island=Biscoe`, not the vocabulary id `island=0`.

TFMA slices on the transformed feature when the model's `transform_features` signature outputs
one under the slicing key's name (tf.Transform's `compute_and_apply_vocabulary` keeps the name),
so the slice values are vocabulary ids. tf.Transform writes each vocabulary as a text file,
named by `vocab_filename`, into the exported model's `assets/`; a vocabulary named after the
feature maps the ids back. Without one the ids stay, and the report says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class SliceNames:
    """Turns TFMA slice keys into names, mapping vocabulary ids of string features back.

    Args:
        model_dir: The candidate SavedModel (its `assets/` holds tf.Transform's vocabularies).
        columns: The slicing specs' feature keys.
        string_columns: Features the raw schema types as strings (BYTES): an integer slice value
            of one of them is a vocabulary id; None when no schema was given.
    """

    def __init__(
        self, model_dir: str, columns: Iterable[str], string_columns: Iterable[str] | None = None
    ) -> None:
        self.vocabularies: dict[str, list[str]] = {}
        self.unreadable: dict[str, str] = {}
        for column in dict.fromkeys(columns):
            path = os.path.join(model_dir, "assets", column)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    self.vocabularies[column] = [line.rstrip("\r\n") for line in fh]
            except (UnicodeDecodeError, OSError) as err:  # e.g. a tfrecord_gzip vocabulary
                self.unreadable[column] = f"{path} is not a text vocabulary ({err})"
        self.string_columns = None if string_columns is None else set(string_columns)
        self.unmapped: set[str] = set()

    @classmethod
    def for_config(cls, config, model_dir: str, schema=None) -> SliceNames:
        """For every slice an EvalConfig names; `schema` (raw) tells which features are strings."""
        from tfkfp.containers.evaluation.checks import slicing_fields

        columns = [
            k
            for _, spec in slicing_fields(config)
            for k in [*spec.feature_keys, *spec.feature_values]
        ]
        strings = None
        if schema is not None:
            from tensorflow_metadata.proto.v0 import schema_pb2

            strings = [f.name for f in schema.feature if f.type == schema_pb2.BYTES]
        return cls(model_dir, columns, strings)

    def value(self, column: str, value) -> str:
        """One slice value as text: a vocabulary id becomes its word."""
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        words = self.vocabularies.get(column)
        if isinstance(value, int) and words is not None:
            return words[value] if 0 <= value < len(words) else f"(not in vocabulary: id {value})"
        if isinstance(value, int) and self.string_columns and column in self.string_columns:
            self.unmapped.add(column)
        return str(value)

    def id_of(self, column: str, value: str) -> str | None:
        """The vocabulary id of a raw value as TFMA's slice value text; None if not a word of it."""
        words = self.vocabularies.get(column)
        if words is None or value not in words:
            return None
        return str(words.index(value))

    def __call__(self, slice_key) -> str:
        """A TFMA SliceKey as `column=value; ...`, or `Overall`."""
        parts = []
        for key in slice_key.single_slice_keys:
            kind = key.WhichOneof("kind")
            value = getattr(key, kind) if kind else ""
            parts.append(f"{key.column}={self.value(key.column, value)}")
        return "; ".join(parts) or "Overall"

    def note(self) -> str:
        """Why some slices show ids (empty when all read as words)."""
        notes = []
        for column in sorted(self.unmapped):
            reason = self.unreadable.get(
                column,
                f"the model has no vocabulary file assets/{column} (tf.Transform writes one when "
                f"preprocessing_fn names the vocabulary vocab_filename='{column}')",
            )
            notes.append(f"Slices by {column} show vocabulary ids: {reason}.")
        return " ".join(notes)
