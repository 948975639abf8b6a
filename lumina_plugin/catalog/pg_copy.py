"""Reading ``COPY ... TO STDOUT (FORMAT BINARY)`` output straight into NumPy arrays.

Fetching 100,000 rows as Python tuples and building an array from them costs a Python object
per value; the binary COPY format of fixed-size columns is one NumPy structured view instead.
"""

from __future__ import annotations

import numpy as np

from .interface import CatalogError

#: The binary COPY signature (then 32-bit flags and a 32-bit header-extension length).
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def bigints_from_copy(data: bytes, ncols: int) -> np.ndarray:
    """(rows, ncols) int64 from ``COPY ... TO STDOUT (FORMAT BINARY)`` of ``ncols`` NOT NULL bigints.

    The format: an 11-byte signature, 32-bit flags and header-extension length, then per row a
    16-bit field count and per field a 32-bit length (8) and the big-endian value; a -1 count ends it.
    """
    if data[:11] != SIGNATURE:
        raise CatalogError("unexpected COPY BINARY data from the server")
    start = 19 + int.from_bytes(data[15:19], "big")
    row = np.dtype([("count", ">i2"), *((f"v{k}", [("len", ">i4"), ("val", ">i8")]) for k in range(ncols))])
    size = len(data) - start - 2
    if size < 0 or size % row.itemsize or data[-2:] != b"\xff\xff":  # a NULL makes a row shorter
        raise CatalogError("unexpected COPY BINARY data from the server (NULL or not bigint)")
    rows = np.frombuffer(data, dtype=row, count=size // row.itemsize, offset=start)
    if (rows["count"] != ncols).any() or any((rows[f"v{k}"]["len"] != 8).any() for k in range(ncols)):
        raise CatalogError("unexpected COPY BINARY rows from the server (NULL or not bigint)")
    return np.stack([rows[f"v{k}"]["val"] for k in range(ncols)], axis=1).astype(np.int64).reshape(-1, ncols)
