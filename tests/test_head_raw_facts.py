"""The pool's facts of a camera RAW beside the GPU (decode/head.py): the full probe's facts,
read from the whole file but without its checksum (the GPU process checksums the RAW it reads);
a RAW without a usable preview, and anything that is neither a JPEG nor a RAW, are probed whole."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from PIL import Image
from test_decode_raw import jpeg_of, write_raw

from lumina_plugin.decode.head import probe_head
from lumina_plugin.decode.photo import PhotoError, probe

SOURCE = sorted(p for p in SAMPLE_DIR.rglob("*.jpg"))[0]


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_raw_with_a_preview_gets_the_full_probe_facts_without_the_checksum(tmp_path: Path, orientation: int) -> None:
    with Image.open(SOURCE) as im:
        preview = jpeg_of(im.convert("RGB").resize((1200, 800)))
    for name, dng in (("IMG_0001.dng", True), ("DSC_0001.NEF", False)):
        path = write_raw(tmp_path / name, preview=preview, orientation=orientation, dng=dng)
        full, head = probe(path), probe_head(path)
        assert head.file.sha256 == "" and full.file.sha256
        assert dataclasses.replace(head, file=full.file) == full
        assert head.file.size_bytes == path.stat().st_size


def test_other_files_are_probed_whole(tmp_path: Path) -> None:
    with Image.open(SOURCE) as im:
        im.convert("RGB").resize((300, 200)).save(tmp_path / "a.png")
        im.convert("RGB").resize((300, 200)).save(tmp_path / "a.tif")
    for name in ("a.png", "a.tif"):
        assert probe_head(tmp_path / name) == probe(tmp_path / name)  # checksum and all
    small = write_raw(tmp_path / "small.dng", preview=None)  # no preview: the full probe (LibRaw or its error)
    try:
        want = probe(small)
    except PhotoError as exc:
        with pytest.raises(PhotoError) as got:
            probe_head(small)
        assert str(got.value) == str(exc)
    else:
        assert probe_head(small) == want
    (tmp_path / "cut.dng").write_bytes(b"II*\x00" + b"\x00" * 10)
    with pytest.raises(PhotoError):
        probe_head(tmp_path / "cut.dng")
