"""``json.loads`` for files a user (or a crash) may have damaged.

The standard parser answers JSON nested thousands deep with ``RecursionError``, which no
``except ValueError`` catches, and keeps the last of two equal keys without a word; here both
are the ``JSONDecodeError`` every reader already turns into its one-line error, and so is an
integer too long for Python to convert (``ValueError`` past 4,300 digits).
"""

from __future__ import annotations

import json
from typing import Any

from smec_index.errors import brief


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):  # the parser would keep the last one, silently
        twice = next(k for k in keys if keys.count(k) > 1)
        raise json.JSONDecodeError(f"key {brief(twice, 40)} appears twice", "", 0)
    return dict(pairs)


def _int(digits: str) -> int:
    """An integer as JSON writes it, refused (not a ``ValueError`` from deep inside the
    parser) when it has more digits than Python converts: no figure smec-index reads has."""
    if len(digits.lstrip("-")) > 4300:  # Python's own limit (sys.get_int_max_str_digits)
        raise json.JSONDecodeError(f"a number of {len(digits)} digits", digits[:40], 0)
    return int(digits)


def loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_int=_int)
    except RecursionError:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to read", shown, 0) from None
