"""The one exception type users see.

Every problem with user input (a file, a flag, an artifact, a server) is raised as
:class:`SmecError` with a one-line message that says what is wrong and what to do. The CLI
prints that line and exits non-zero; library users can catch it as a ``ValueError``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class SmecError(ValueError):
    """A user-facing error: one line, says what to do.

    A message is kept to one line whatever it quotes (the repr of an array, a file's text):
    line breaks and the spaces around them become one space."""

    def __init__(self, message: object = "", *args: object) -> None:
        if isinstance(message, str) and ("\n" in message or "\r" in message):
            import re

            message = re.sub(r"\s*[\r\n]+\s*", " ", message)
        super().__init__(message, *args)


def brief(value: object, most: int = 40) -> str:
    """``repr(value)`` cut to ``most`` characters, with ``...`` where it was cut: a message
    quotes what it was given without quoting a megabyte, and a number cut short never reads
    as another number (grade 10**400 was shown as 1 and 29 zeros)."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300 digits
        return f"<a number of more than {sys.get_int_max_str_digits()} digits>"
    return text if len(text) <= most else f"{text[:most]}..."


def check_say(say: object) -> Callable[[str], None]:
    """Where a long call's notes go: a function taking one line (``print``, a logger's
    method), or None for none; anything else is one line (None raised a raw TypeError at
    the first note, after the work)."""
    if say is None:
        return lambda *_: None
    if not callable(say):
        raise SmecError(f"say must be a function taking one line (e.g. print), or None for no "
                        f"notes; got {type(say).__name__}")  # fmt: skip
    return say


def check_switch(value: object, name: str) -> bool:
    """``value`` as a switch (True or False, numpy's too), or a one-line error: "no" or 1
    from Python would otherwise be taken as yes (an overwrite, a retraining)."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise SmecError(f"{name} must be True or False, got {brief(value, 30)}")
    return bool(value)
