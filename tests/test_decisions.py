"""Relations, decisions from the review, calibration and the config command, on real photos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lumina_plugin.calibration import BANDS, estimate, wilson
from lumina_plugin.catalog.interface import CatalogError
from lumina_plugin.engine import Engine

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    return lib


def members(report) -> dict[str, dict]:
    return {Path(m["path"]).name: m for g in report.as_json()["groups"] for m in g["members"]}


def test_each_member_gets_its_relation_and_details(tmp_path: Path, library: Path) -> None:
    with Engine(tmp_path / "c.db") as engine:
        report = engine.find_duplicates([library])
    m = members(report)
    assert m["IMG_8812_crop.jpg"]["relation"] == "edit"           # cropped: another aspect ratio
    assert m["DSC04512_small.jpg"]["relation"] == "derivative"     # resized
    assert m["IMG_0412.webp"]["relation"] == "derivative"          # other format
    assert m["PXL_20220611_081522.jpg"]["relation"] == "derivative"
    assert {m[n]["relation"] for n in ("IMG_8812.jpg",)} <= {"keeper", "exact"}
    small = m["DSC04512_small.jpg"]
    assert (small["width"], small["height"], small["format"]) == (320, 200, "JPEG")
    assert small["size_bytes"] == (library / "exports/web/DSC04512_small.jpg").stat().st_size
    assert small["action"] and small["camera"]
    g = next(g for g in report.as_json()["groups"] if g["keeper"].endswith("DSC04512.jpg"))
    assert g["savable_bytes"] == small["size_bytes"]


def test_raw_jpeg_pair_relation(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    img = Image.open(SAMPLE / "2019/2019-04-27/DSCF0815.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T3"
    exif.get_ifd(0x8769)[0x9003] = "2019:04:27 10:00:00"
    exif[0x0132] = "2019:04:27 10:00:00"  # Pillow's TIFF writer drops the EXIF sub-IFD: DateTime it is
    img.save(lib / "DSCF0815.tif", exif=exif)      # stands in for the RAW: a lossless original...
    os.rename(lib / "DSCF0815.tif", lib / "DSCF0815.dng")  # ...under a RAW extension Pillow still reads
    img.save(lib / "DSCF0815.jpg", quality=90, exif=exif)
    with Engine(tmp_path / "c.db") as engine:
        m = members(engine.find_duplicates([lib]))
    assert m["DSCF0815.jpg"]["relation"] == "raw+jpeg"
    assert m["DSCF0815.jpg"]["action"].startswith("keep both")


def test_not_duplicate_decision_unflags_the_pair_for_good(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    crop = library / "exports" / "DSCF0815_crop.jpg"
    with Engine(db) as engine:
        engine.find_duplicates([library])
        report = engine.decide("not-duplicate", [library / "2019/2019-04-27/DSCF0815.jpg", crop])
        assert "DSCF0815_crop.jpg" not in members(report)
        assert "DSCF0815_q60.jpg" in members(report)  # the rest of the group stays
    with Engine(db) as engine:  # ...and a full re-run remembers it
        assert "DSCF0815_crop.jpg" not in members(engine.find_duplicates([library]))
        with pytest.raises(CatalogError, match="byte-identical"):
            engine.decide("not-duplicate", [library / "2021/2021-03-14/IMG_0412.jpg",
                                             library / "backup/2021/2021-03-14/IMG_0412.jpg"])
        with pytest.raises(CatalogError, match="not in the catalog"):
            engine.decide("keeper", [tmp_path / "nowhere.jpg"])


def test_keeper_decision_wins_and_can_be_forgotten(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    small = library / "exports/web/DSC04512_small.jpg"
    with Engine(db) as engine:
        engine.find_duplicates([library])
        report = engine.decide("keeper", [small])
        group = next(g for g in report.as_json()["groups"] if "DSC04512" in g["keeper"])
        assert group["keeper"] == str(small) and "person" in group["reason"]
        (decision,) = engine.decisions()
        report = engine.forget(decision["id"])
        assert report is not None and engine.forget(decision["id"]) is None
        group = next(g for g in report.as_json()["groups"] if "DSC04512" in g["keeper"])
        assert group["keeper"].endswith("2016-08-19/DSC04512.jpg")


def test_review_reads_without_writing(tmp_path: Path, library: Path) -> None:
    with Engine(tmp_path / "c.db") as engine:
        written = engine.find_duplicates([library]).as_json()["groups"]
        runs = engine.catalog.runs()
        assert engine.review().as_json()["groups"] == written
        assert engine.catalog.runs() == runs


def test_wilson_interval_and_threshold_suggestion() -> None:
    lo, hi = wilson(10, 10)
    assert 0.69 < lo < 0.73 and hi == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    # Clean close bands, a mixed far band: the suggestion stops before the mixed band.
    verdicts = [(1, True)] * 80 + [(4, True)] * 80 + [(7, True)] * 80 + [(10, True)] * 5 + [(10, False)] * 5
    result = estimate(verdicts, target=0.95)
    assert result.suggested == BANDS[2][1]
    assert result.bands[3].precision == 0.5
    unsure = estimate([(1, True)] * 3)
    assert unsure.suggested is None and "not sure" in unsure.verdict


def cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_calibrate_proposes_pairs_and_counts_verdicts(tmp_path: Path, library: Path) -> None:
    db = str(tmp_path / "c.db")
    cli("find-duplicates", str(library), "--catalog", db)
    first = json.loads(cli("calibrate", "--catalog", db, "--json", "--per-band", "3").stdout)
    assert first["to_judge"] and all(p["band"][0] <= p["distance"] <= p["band"][1] for p in first["to_judge"])
    pick = first["to_judge"][0]
    cli("decide", "duplicate", *pick["paths"], "--catalog", db)
    second = json.loads(cli("calibrate", "--catalog", db, "--json", "--per-band", "3").stdout)
    band = next(b for b in second["bands"] if b["band"] == pick["band"])
    assert band["judged"] == 1 and band["duplicates"] == 1
    assert pick["paths"] not in [p["paths"] for p in second["to_judge"]]


def test_config_command_shows_values_and_their_source(tmp_path: Path) -> None:
    (tmp_path / "lumina-dedup.toml").write_text("[thresholds]\nphash = 7\n")
    out = json.loads(cli("config", "--catalog", str(tmp_path / "c.db"), "--json").stdout)
    rows = {r["key"]: r for r in out["settings"]}
    assert rows["thresholds.phash"] == {"key": "thresholds.phash", "value": 7,
                                        "source": str(tmp_path / "lumina-dedup.toml")}
    assert rows["thresholds.dhash"]["source"] == "default"
    assert out["files"] == [str(tmp_path / "lumina-dedup.toml")]
