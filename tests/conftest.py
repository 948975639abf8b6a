"""Shared fixtures: the sample photo library and real photo files written on demand.

Every file these fixtures produce is a real, decodable photo derived from one of the
photographs in ``sample_catalog/`` (see its SOURCES.md), written with Pillow to a
temporary folder. Nothing here is mocked.

- ``sample_dir``  -- Path of ``sample_catalog/`` (read-only: never write into it).
- ``make_photo``  -- factory: ``make_photo("a/b.jpg", size=..., format=..., quality=...,
                     orientation=..., make=..., model=..., taken_at=..., mode=..., mtime=...)``
                     writes a photo under ``tmp_path`` and returns its Path.
- ``big_photo``   -- a 3000x2000 noisy JPEG (camera-sized), shared by the whole session.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"

#: The photo ``make_photo`` and ``big_photo`` start from unless told otherwise: an
#: upright (orientation 1) 640x400 JPEG with plenty of structure.
DEFAULT_SOURCE = "2015/2015-10-29/IMG_8812.jpg"

#: EXIF tag numbers (IFD0 and the Exif sub-IFD).
TAG_MAKE, TAG_MODEL, TAG_ORIENTATION, TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
EXIF_IFD, TAG_DATETIME_ORIGINAL = 0x8769, 0x9003

#: For each EXIF orientation, the transpose that turns the upright picture into the
#: STORED pixels: the inverse of what ``ImageOps.exif_transpose`` applies when showing it.
_STORE_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,   # viewer applies ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # viewer applies ROTATE_90
}

_FORMAT_OF_SUFFIX = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG", ".webp": "WEBP",
    ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
}
_FORMATS_WITH_EXIF = {"JPEG", "PNG", "WEBP", "TIFF"}

MakePhoto = Callable[..., Path]


def upright_source(source: str | Path | Image.Image = DEFAULT_SOURCE) -> Image.Image:
    """The displayed (EXIF-transposed) RGB/L pixels of a sample photo, fully loaded."""
    if isinstance(source, Image.Image):
        return source.copy()
    path = Path(source)
    if not path.is_absolute():
        path = SAMPLE_DIR / path
    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im)


def jpeg_gray(img: Image.Image, side: int = 420) -> np.ndarray:
    """``img`` shrunk to ``side`` pixels at most, saved as a JPEG (quality 90) and decoded
    back as gray: a photo as the second look reads one, with a codec's round trip."""
    img = img.convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def _exif_bytes(orientation: int, make: str | None, model: str | None,
                taken_at: datetime | str | None) -> bytes:
    exif = Image.Exif()
    exif[TAG_ORIENTATION] = orientation
    if make is not None:
        exif[TAG_MAKE] = make
    if model is not None:
        exif[TAG_MODEL] = model
    if taken_at is not None:
        stamp = taken_at.strftime("%Y:%m:%d %H:%M:%S") if isinstance(taken_at, datetime) else taken_at
        exif[TAG_DATETIME] = stamp
        exif.get_ifd(EXIF_IFD)[TAG_DATETIME_ORIGINAL] = stamp
    return exif.tobytes()


def write_photo(
    dest: Path,
    *,
    source: str | Path | Image.Image = DEFAULT_SOURCE,
    size: tuple[int, int] | None = None,
    format: str | None = None,
    quality: int = 90,
    orientation: int = 1,
    make: str | None = None,
    model: str | None = None,
    taken_at: datetime | str | None = None,
    mode: str | None = None,
    mtime: float | None = None,
) -> Path:
    """Write one real photo to ``dest`` (parents created) and return ``dest``.

    source:      a path relative to sample_catalog/ (or absolute), or a PIL image; its
                 upright pixels are what a viewer will show for the written file.
    size:        (width, height) as DISPLAYED (after the orientation); LANCZOS resize.
    format:      Pillow format name; default from the suffix (.jpg .png .webp .gif .tif .bmp).
    quality:     JPEG/WebP quality.
    orientation: EXIF Orientation tag 1-8. The stored pixels are transposed so that
                 ``ImageOps.exif_transpose(Image.open(dest))`` shows the upright source.
    make/model/taken_at: EXIF Make, Model, DateTime and DateTimeOriginal (a datetime or
                 an EXIF "YYYY:MM:DD HH:MM:SS" string).
                 An EXIF block is written only when one of orientation != 1, make, model or
                 taken_at is given, and only for JPEG, PNG, WebP and TIFF (ValueError otherwise).
    mode:        convert to this Pillow mode before saving ("CMYK", "P", "RGBA", "L"...).
    mtime:       set the file's modification time (seconds since the epoch).
    """
    dest = Path(dest)
    fmt = format or _FORMAT_OF_SUFFIX.get(dest.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {dest.name}; pass format=")
    if orientation not in _STORE_TRANSPOSE:
        raise ValueError(f"EXIF orientation is 1..8, got {orientation}")
    im = upright_source(source)
    if size is not None and tuple(size) != im.size:
        im = im.resize(tuple(size), Image.Resampling.LANCZOS)
    if mode is not None and im.mode != mode:
        im = im.convert(mode)
    elif fmt == "JPEG" and im.mode not in ("L", "RGB", "CMYK"):
        im = im.convert("RGB")
    step = _STORE_TRANSPOSE[orientation]
    stored = im.transpose(step) if step is not None else im

    kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if orientation != 1 or make is not None or model is not None or taken_at is not None:
        if fmt not in _FORMATS_WITH_EXIF:
            raise ValueError(f"cannot write EXIF into {fmt}")
        kwargs["exif"] = _exif_bytes(orientation, make, model, taken_at)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stored.save(dest, fmt, **kwargs)
    if mtime is not None:
        os.utime(dest, (mtime, mtime))
    return dest


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The sample photo library (40 real photos, planted duplicates). Read-only."""
    assert SAMPLE_DIR.is_dir(), SAMPLE_DIR
    return SAMPLE_DIR


@pytest.fixture
def make_photo(tmp_path: Path) -> MakePhoto:
    """Factory writing real photos under this test's ``tmp_path``.

    ``make_photo(name="photo.jpg", **options) -> Path`` where ``name`` is a path relative
    to tmp_path (sub-folders are created) and the options are those of
    :func:`write_photo`: source, size, format, quality, orientation, make, model,
    taken_at, mode, mtime. Example::

        p = make_photo("card/IMG_1.JPG", orientation=6, make="Canon", model="EOS 80D",
                       taken_at=datetime(2021, 3, 14, 10, 42, 7))
    """
    def make(name: str | Path = "photo.jpg", **options: object) -> Path:
        return write_photo(tmp_path / name, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera-sized 3000x2000 JPEG (q90, no EXIF): a sample photo upscaled, plus
    seeded Gaussian noise (sigma 6) so it has real high-frequency content.

    Shared by the whole session: read it, never modify it (copy it to tmp_path first).
    """
    im = upright_source().convert("RGB").resize((3000, 2000), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(20240611)
    pixels = np.asarray(im, dtype=np.float32) + rng.normal(0.0, 6.0, size=(2000, 3000, 3)).astype(np.float32)
    noisy = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    dest = tmp_path_factory.mktemp("big") / "DSC_big.jpg"
    noisy.save(dest, "JPEG", quality=90)
    return dest


@pytest.fixture(scope="session", autouse=True)
def _no_user_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every test, and the servers and workers the session starts, out of the developer's
    own ~/.local/share/lumina-dedup: the default catalog and the index folders of Lumina's
    PostgreSQL catalogs live there. Session-wide, so it holds before any session fixture."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own ~/.config/lumina-dedup out of every test (and its subprocesses)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


def hash_without_module(module: str, *files: Path) -> dict:
    """The records and per-file error records of hashing ``files`` (the engine's own
    pipeline) in a fresh Python whose ``import module`` fails, as when an optional package
    (pillow-heif, rawpy) is not installed: {"files": [{"path"}], "errors": [FileError JSON]}."""
    import json
    import subprocess
    import sys

    code = (f"import json, sys; sys.modules[{module!r}] = None\n"
            "from lumina_plugin.config import Config\n"
            "from lumina_plugin.ingest.pipeline import hash_paths\n"
            "out = {'files': [], 'errors': []}\n"
            f"for records, errors in hash_paths({[str(f) for f in files]!r}, Config()):\n"
            "    out['files'] += [{'path': r.path} for r in records]\n"
            "    out['errors'] += [e.as_json() for e in errors]\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
