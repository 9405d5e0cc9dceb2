"""Qdrant: the embedded engine (qdrant-edge), a server, or qdrant-client's local mode.

qdrant-client's local mode warns ("Local mode is not recommended for collections with more
than 20,000 points") on every write past that size; smec-index reads and writes a user's
local folder as the user made it, and says which mode it uses, so the warning is kept out
of the user's terminal for the whole process, not only while a client is opened.
"""

import warnings as _warnings

_warnings.filterwarnings("ignore", message=r"Local mode is not recommended", category=UserWarning)
