"""Milvus: milvus-lite files by default, or a Milvus server given by URI.

pymilvus reads ``MILVUS_URI`` itself when it is first imported and refuses a milvus-lite
path there ("Illegal uri"), although smec-index takes that variable as ``--uri``'s default,
where a path is a milvus-lite database. It is imported here, before any module of this
package, with the variable out of its sight; smec-index passes every address explicitly.
"""

import os as _os

# gRPC's own C-core log lines ("File descriptor limit reached", keepalive GOAWAY notes) go
# straight to stderr; what went wrong reaches the user as one error line instead.
_os.environ.setdefault("GRPC_VERBOSITY", "NONE")
_uri = _os.environ.pop("MILVUS_URI", None)
try:
    import pymilvus  # noqa: F401 - imported for the side effect above
finally:
    if _uri is not None:
        _os.environ["MILVUS_URI"] = _uri
