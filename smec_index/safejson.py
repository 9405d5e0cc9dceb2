"""``json.loads`` for files a user (or a crash) may have damaged.

The standard parser answers JSON nested thousands deep with ``RecursionError``, which no
``except ValueError`` catches; here it is the ``JSONDecodeError`` every reader already
turns into its one-line error.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to read", shown, 0) from None
