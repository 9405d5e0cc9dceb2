"""The one exception type users see.

Every problem with user input (a file, a flag, an artifact, a server) is raised as
:class:`SmecError` with a one-line message that says what is wrong and what to do. The CLI
prints that line and exits non-zero; library users can catch it as a ``ValueError``.
"""

from __future__ import annotations


class SmecError(ValueError):
    """A user-facing error: one line, says what to do."""
