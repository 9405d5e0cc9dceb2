"""Names of product-code encodings, shared by the FAISS connector and the benchmark.

``pq<m>`` stores m-byte product codes; ``opq<m>`` the same codes after an OPQ rotation.
"""

from __future__ import annotations


def pq_bytes(encoding: str) -> int | None:
    """``m`` of ``pq<m>`` (decimal digits only, m > 0), else None."""
    tail = encoding[2:] if encoding.startswith("pq") else ""
    return int(tail) if tail.isdecimal() and int(tail) > 0 else None


def opq_bytes(encoding: str) -> int | None:
    """``m`` of ``opq<m>``, else None."""
    return pq_bytes(encoding[1:]) if encoding.startswith("opq") else None


def product_code_bytes(encoding: str) -> int | None:
    """``m`` of ``pq<m>`` or ``opq<m>``, else None."""
    return pq_bytes(encoding) or opq_bytes(encoding)
