"""The second look's prepared photos (lumina_plugin/hashing/look.py): a photo prepared once and
looked at in many pairs, turned and straightened, gives every pair the verdict a fresh look
gives, and the kept bases are the ones a registration would compute. Real photos of
sample_catalog/, copies made with Pillow as an editor would."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lumina_plugin.hashing import look
from lumina_plugin.hashing.borders import basis

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
sys.path.insert(0, str(SAMPLE.parent / "benchmarks"))

from _corpus_edits import straighten  # noqa: E402  (the accuracy corpus's straightened copies)

ORIGINALS = ["2015/2015-10-29/IMG_8812.jpg", "2018/2018-10-14/DSC00401.jpg", "2021/2021-12-24/IMG_3307.jpg"]


def gray(img: Image.Image, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def test_prepared_photos_shared_by_many_pairs_give_the_fresh_verdicts() -> None:
    originals = []
    for rel in ORIGINALS:
        with Image.open(SAMPLE / rel) as im:
            originals.append(ImageOps.exif_transpose(im).convert("RGB"))
    grays: list[np.ndarray] = []
    for img in originals:
        w, h = img.size
        grays += [gray(img, 95), gray(straighten(img, 2.0)), gray(straighten(img, -3.0)),
                  gray(img.crop((int(0.05 * w), int(0.03 * h), w - int(0.02 * w), h - int(0.06 * h)))),
                  gray(img.rotate(90, expand=True))]
    # Every original against its copies (the turned one at its quarter turn) and against the
    # other originals' copies: the same prepared photos serve every pair, in an order that
    # makes a rotation computed for one pair come back for the next.
    pairs = [(5 * i, 5 * i + k, 3 if k == 4 else 0) for i in range(3) for k in range(1, 5)]
    pairs += [(5 * i, 5 * j + k, 0) for i in range(3) for j in range(3) if i != j for k in (1, 2)]
    prepared = [look.LookPhoto(g) for g in grays]
    shared = [look.look_at(prepared[a], prepared[b], r) for a, b, r in pairs]
    fresh = [look.second_look(grays[a], grays[b], r) for a, b, r in pairs]
    assert shared == fresh
    copies, others = shared[:12], shared[12:]
    assert all(v.ok for v in copies), [(p, v.distance) for p, v in zip(pairs, copies) if not v.ok]
    assert sum(1 for v in copies if v.angle) >= 6  # the straightened copies were turned back
    assert not any(v.ok for v in others)
    # Looking again with everything kept changes nothing either.
    assert [look.look_at(prepared[a], prepared[b], r) for a, b, r in pairs] == fresh


def test_kept_bases_equal_the_stored_codes_bases() -> None:
    for n, a, b in ((300, 0.0, 300.0), (257, 12.34, 240.5), (383, 25.0, 371.2)):
        fast = look._look_basis(n, a, b)
        assert not fast.flags.writeable  # kept for later registrations: nobody may change it
        np.testing.assert_allclose(fast, basis(np, n, a, b, 16), rtol=0, atol=1e-13)
        assert look._look_basis(n, a, b) is fast
