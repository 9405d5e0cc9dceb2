"""Reaching a Qdrant server: a connection check with retries, and sizes from telemetry.

The API key goes to qdrant-client and nowhere else: messages name the URL (without any
user:password part), never the key, and errors are raised ``from None`` so no chained
exception can carry request details into a traceback.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import httpx
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from smec_index.connectors.base import Sizes
from smec_index.errors import SmecError
from smec_index.secrets import check_credential, check_url, has_userinfo, shown_url, url_secrets

TRANSPORT_ERRORS = (ResponseHandlingException, httpx.HTTPError, ConnectionError, TimeoutError)
_PROBE_TIMEOUT_S = 2
_PROBE_BUDGET_S = 8.0


def failure(exc: BaseException) -> str:
    """The name of what failed underneath qdrant-client's wrapper (``ConnectError``...)."""
    return type(getattr(exc, "source", None) or exc).__name__


def check_server_url(url: str, flag: str) -> None:
    """A Qdrant server address as every command takes it: http(s)://host:port, with no
    user:password or key in it (the key comes from --api-key or QDRANT_API_KEY)."""
    check_url(url, flag)
    if has_userinfo(url) or url_secrets(url):
        raise SmecError(
            f"{flag} {shown_url(url)}: Qdrant takes its API key from --api-key (or "
            "QDRANT_API_KEY), not from user:password or a key in the URL; remove it"
        )
    if not url.startswith(("http://", "https://")):
        raise SmecError(f"{flag} {shown_url(url)}: use http://host:6333 (or https://)")


def connect_server(
    url: str, api_key: str | None, timeout: float, url_flag: str = "--url/QDRANT_URL"
) -> QdrantClient:
    """A client for the server at ``url``, checked with a few retries inside ~8 s; messages
    name ``url_flag`` as where the address came from (a migration's source reads no
    QDRANT_URL).

    Raises:
        SmecError: the server cannot be reached or refuses the API key; the message names
            the URL, never the key.
    """
    if api_key:
        check_credential(api_key, "--api-key")
    where, delay, tries = shown_url(url), 0.25, 0
    deadline = time.monotonic() + _PROBE_BUDGET_S
    with warnings.catch_warnings():
        # The insecure-connection warning comes once, from the client kept below.
        warnings.simplefilter("ignore", UserWarning)
        probe = QdrantClient(
            url=url, api_key=api_key, timeout=_PROBE_TIMEOUT_S, check_compatibility=False
        )
    try:
        while True:
            tries += 1
            try:
                probe.get_collections()
                break
            except UnexpectedResponse as exc:
                if exc.status_code in (401, 403):
                    raise SmecError(
                        f"Qdrant at {where} refused the API key (HTTP {exc.status_code}); "
                        "check --api-key/QDRANT_API_KEY"
                    ) from None
                if exc.status_code < 500:
                    raise SmecError(
                        f"{where} answered HTTP {exc.status_code}, not as a Qdrant server; "
                        f"check {url_flag}"
                    ) from None
                reason = f"HTTP {exc.status_code}"  # starting up or overloaded: try again
            except TRANSPORT_ERRORS as exc:
                reason = failure(exc)
            except (ValueError, TypeError, KeyError, AttributeError):  # JSON of another kind
                raise SmecError(
                    f"{where} answered, but not as a Qdrant server (its reply is not Qdrant's "
                    f"JSON); check {url_flag}"
                ) from None
            if time.monotonic() + delay + _PROBE_TIMEOUT_S > deadline:
                raise SmecError(
                    f"cannot reach Qdrant at {where} after {tries} tries ({reason}); check "
                    f"{url_flag} and that the server is running"
                )
            time.sleep(delay)
            delay *= 2
    finally:
        probe.close()
    return QdrantClient(
        url=url, api_key=api_key, timeout=max(1, math.ceil(timeout)), check_compatibility=False
    )


def telemetry_sizes(telemetry: dict[str, Any], collection: str) -> Sizes:
    """A collection's :class:`Sizes` from ``GET /telemetry`` (details level >= 3).

    Qdrant reports, per segment, the bytes of its vectors (``vectors_size_bytes``: the
    stored vectors, not the HNSW links or quantized codes) and what the segment takes on
    disk (``disk_usage_bytes``). The first is the closest figure a server gives to
    ``index_bytes`` and undercounts it by the graph; the method says so.
    """
    found = [
        c
        for c in (telemetry.get("result") or {}).get("collections", {}).get("collections") or []
        if isinstance(c, dict) and c.get("id") == collection
    ]
    shards = [r.get("local") or {} for c in found for r in c.get("shards") or []]
    segments = [s.get("info") or {} for shard in shards for s in shard.get("segments") or []]

    def total(key: str) -> int | None:
        values = [s[key] for s in segments if s.get(key) is not None]
        return int(sum(values)) if values else None

    return Sizes(
        index_bytes=total("vectors_size_bytes"),
        total_bytes=total("disk_usage_bytes"),
        method="Qdrant telemetry: index = segments' vectors_size_bytes (stored vectors; "
        "HNSW links and quantized codes not reported); total = segments' disk_usage_bytes",
    )
