"""HEIC/HEIF and AVIF: make Pillow able to open them, or say clearly what is missing.

- HEIC/HEIF (iPhone and most Android phones since 2017) is opened through the optional
  ``pillow-heif`` (libheif), registered as a Pillow plugin the first time such a file is
  met, so a library without any HEIC pays nothing. libheif applies the file's own
  rotation and mirror (irot/imir) and pillow-heif then resets the EXIF orientation to 1,
  so the decoder does not turn the picture a second time.
- AVIF is read by Pillow itself (11.3 and later, when built with libavif, as the wheels
  are); pillow-heif 1.x no longer reads AVIF, 0.x did, through ``register_avif_opener``.

The format is told by the file's ``ftyp`` box, not its extension. When the decoder a
file needs is missing, :func:`prepare` raises :class:`HeifUnavailable` with a one-line
reason naming the extra to install; the caller records it as that file's error.
"""

from __future__ import annotations

import struct

from ..extras import needs

#: ftyp brands of HEVC-coded HEIF (HEIC) and of the generic image/sequence structures.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

_registered: set[str] = set()


class HeifUnavailable(Exception):
    """The file is HEIF/AVIF and this environment cannot decode it; ``str()`` says why."""


def heif_kind(data: bytes) -> str | None:
    """"HEIF" or "AVIF" from the file's ftyp box, or None when it is neither."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    size = struct.unpack_from(">I", data, 0)[0]
    end = min(max(size, 16), len(data), 256)
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}
    if brands & _HEIC_BRANDS:
        return "HEIF"
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _GENERIC_BRANDS:
        return "HEIF"
    return None


def prepare(data: bytes) -> str | None:
    """Register the Pillow plugin ``data`` needs (once per process); return its kind.

    Raises HeifUnavailable when the file is HEIF/AVIF and no installed package decodes it.
    """
    kind = heif_kind(data)
    if kind is None or kind in _registered:
        return kind
    if kind == "AVIF" and _pillow_reads_avif():
        _registered.add(kind)
        return kind
    try:
        import pillow_heif
    except ImportError:
        if kind == "AVIF":
            raise HeifUnavailable("AVIF needs Pillow 11.3 or later built with libavif "
                                  "(this Pillow cannot read it)") from None
        raise HeifUnavailable(f"HEIC/HEIF {needs('pillow_heif')}") from None
    if kind == "HEIF":
        pillow_heif.register_heif_opener()
    elif hasattr(pillow_heif, "register_avif_opener"):  # pillow-heif < 1.0
        pillow_heif.register_avif_opener()
    else:
        raise HeifUnavailable("AVIF needs Pillow 11.3 or later built with libavif "
                              "(pillow-heif 1.x no longer reads AVIF)")
    _registered.add(kind)
    return kind


def _pillow_reads_avif() -> bool:
    try:
        from PIL import features

        return bool(features.check("avif"))
    except Exception:  # an old Pillow without the feature name
        return False
