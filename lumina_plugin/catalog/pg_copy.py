"""Reading ``COPY ... TO STDOUT (FORMAT BINARY)`` output straight into NumPy arrays.

Fetching 100,000 rows as Python tuples and building an array from them costs a Python object
per value; the binary COPY format of fixed-size columns is one NumPy structured view instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .interface import CatalogError

#: The binary COPY signature (then 32-bit flags and a 32-bit header-extension length).
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def fields_from_copy(data: bytes, sizes: Sequence[int]) -> list[np.ndarray]:
    """The columns of ``COPY ... TO STDOUT (FORMAT BINARY)`` whose fields are all NOT NULL and
    ``sizes[k]`` bytes long in column ``k``: a column of 8-byte fields as int64 (rows,) (a
    bigint), any other as uint8 (rows, size) (its bytes as sent, e.g. a bytea's).

    The format: an 11-byte signature, 32-bit flags and header-extension length, then per row a
    16-bit field count and per field a 32-bit length and the value (big-endian); a -1 count ends it.
    """
    if data[:11] != SIGNATURE:
        raise CatalogError("unexpected COPY BINARY data from the server")
    start = 19 + int.from_bytes(data[15:19], "big")
    row = np.dtype([("count", ">i2"), *((f"v{k}", [("len", ">i4"), ("val", ">i8" if n == 8 else ("u1", (n,)))])
                                        for k, n in enumerate(sizes))])
    size = len(data) - start - 2
    if size < 0 or size % row.itemsize or data[-2:] != b"\xff\xff":  # a NULL makes a row shorter
        raise CatalogError("unexpected COPY BINARY data from the server (a NULL or a field of another size)")
    rows = np.frombuffer(data, dtype=row, count=size // row.itemsize, offset=start)
    if (rows["count"] != len(sizes)).any() or any((rows[f"v{k}"]["len"] != n).any() for k, n in enumerate(sizes)):
        raise CatalogError("unexpected COPY BINARY rows from the server (a NULL or a field of another size)")
    return [rows[f"v{k}"]["val"].astype(np.int64 if n == 8 else np.uint8).reshape(len(rows), *(() if n == 8 else (n,)))
            for k, n in enumerate(sizes)]


def bigints_from_copy(data: bytes, ncols: int) -> np.ndarray:
    """(rows, ncols) int64 from ``COPY ... TO STDOUT (FORMAT BINARY)`` of ``ncols`` NOT NULL bigints."""
    return np.stack(fields_from_copy(data, [8] * ncols), axis=1).astype(np.int64).reshape(-1, ncols)
