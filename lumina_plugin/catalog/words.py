"""How a photo's code words are stored, shared by both catalogs.

A photo's codes are :data:`~lumina_plugin.model.CODE_WORDS` uint64 words: the four classic
hashes (stored as before: imagehash hex text in SQLite, BIGINT columns in PostgreSQL), then
the :data:`~lumina_plugin.model.GEO_WORDS` geometry words, stored together in one binary
column (``images.geometry`` BLOB, ``lumina_dedup_images.geometry`` BYTEA): the words
big-endian, 8 bytes each, so byte ``k`` of the column is byte ``k`` of
``codes[CLASSIC_WORDS:].astype(">u8").tobytes()`` in both databases. A row written before
the geometry words (older catalogs, older versions of this plugin) has NULL there: its
geometry words read as zeros (such rows carry an older ``hash_version`` and are rehashed).
A pair's distance row: :func:`.interface.pair_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..hashing.codes import hex_to_code
from ..model import CLASSIC_WORDS, CODE_WORDS, GEO_WORDS
from .interface import CatalogError

#: Bytes of the stored geometry words.
GEOMETRY_BYTES = 8 * GEO_WORDS
#: What a row without geometry words reads as.
NO_GEOMETRY = bytes(GEOMETRY_BYTES)


def split_codes(codes: np.ndarray) -> tuple[list[int], bytes]:
    """(the classic hashes as ints, the geometry words as stored) of one photo's codes."""
    words = np.asarray(codes).ravel()
    if words.size != CODE_WORDS:
        raise CatalogError(f"a photo has {CODE_WORDS} code words (the classic hashes, then the geometry "
                           f"words), got {words.size}")
    words = words.astype(np.uint64)
    return [int(w) for w in words[:CLASSIC_WORDS]], words[CLASSIC_WORDS:].astype(">u8").tobytes()


def geometry_words(stored: Sequence[bytes | None]) -> np.ndarray:
    """uint64 (n, GEO_WORDS) from stored geometry columns (None: zeros)."""
    if any(s is not None and len(s) != GEOMETRY_BYTES for s in stored):
        raise CatalogError(f"a stored geometry column is not {GEOMETRY_BYTES} bytes: the catalog is damaged")
    data = b"".join(NO_GEOMETRY if s is None else bytes(s) for s in stored)
    return np.frombuffer(data, dtype=">u8").astype(np.uint64).reshape(-1, GEO_WORDS)



def hex_words(texts: Sequence[str]) -> np.ndarray:
    """uint64 (n,) from imagehash strings (16 hex digits each), parsed in one go (the SQLite
    ``all_codes`` of 100,000 rows: 0.28 s, against 0.50 s parsing one by one); anything else
    raises as :func:`hex_to_code` does."""
    if all(isinstance(t, str) and len(t) == 16 for t in texts):
        try:
            data = bytes.fromhex("".join(texts))
        except ValueError:
            data = b""
        if len(data) == 8 * len(texts):  # (fromhex skips spaces: those end here, shorter)
            return np.frombuffer(data, dtype=">u8").astype(np.uint64)
    return np.array([hex_to_code(t) for t in texts], dtype=np.uint64)
