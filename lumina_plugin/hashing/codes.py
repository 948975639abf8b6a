"""How hash bits are stored: 64-bit codes and imagehash hex strings (the algorithm list and
version live in :mod:`lumina_plugin.model`).

A hash is a 64-bit unsigned integer whose most significant bit is imagehash's first
bit (row-major over its 8x8 bit array). ``format(code, "016x")`` is therefore exactly
``str(imagehash_value)`` and ``code.to_bytes(8, "big")`` is
``bytes.fromhex(str(imagehash_value))``: the bytes FAISS and the index store.
"""

from __future__ import annotations

import re

import numpy as np

_HEX16 = re.compile(r"[0-9a-fA-F]{16}")


def bits_to_code(bits: np.ndarray) -> int:
    """Pack a boolean array (any shape, 64 elements) into a code, first element = MSB."""
    flat = np.asarray(bits, dtype=bool).ravel()
    if flat.size != 64:
        raise ValueError(f"expected 64 bits, got {flat.size}")
    return int.from_bytes(np.packbits(flat).tobytes(), "big")


def code_to_hex(code: int) -> str:
    """The imagehash string of a code (16 lowercase hex digits)."""
    return format(int(code), "016x")


def hex_to_code(text: str) -> int:
    """Inverse of :func:`code_to_hex`; raises ValueError on anything but 16 hex digits."""
    if not _HEX16.fullmatch(text):
        raise ValueError(f"a 64-bit hash has 16 hex digits, got {text!r}")
    return int(text, 16)


def codes_to_bytes(codes: np.ndarray) -> np.ndarray:
    """uint64 codes of shape (n,) -> uint8 array (n, 8), MSB-first, as FAISS binary indexes take."""
    return np.ascontiguousarray(np.asarray(codes, dtype=np.uint64).astype(">u8")).view(np.uint8).reshape(-1, 8)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two codes."""
    return (int(a) ^ int(b)).bit_count()
