"""Text for the Markdown reports the KFP UI renders: one escaping rule for every stage.

The UI's renderer (markdown-to-jsx) reads `_` and `*` as emphasis, so a metric named
`sparse_categorical_accuracy` would show as "sparse*categorical*accuracy"; `|` ends a table cell.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that change text.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def escape(text: object) -> str:
    """`text` as literal Markdown text (also inside a table cell); newlines become spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def code(text: object, in_table: bool = False) -> str:
    """`text` as an inline code span, fenced with more backticks than it contains.

    In a table cell a `|` is escaped too: GFM splits cells before it reads code spans.
    """
    text = " ".join(str(text).splitlines())
    if in_table:
        text = text.replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
