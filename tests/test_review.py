"""The review report as a person sees it: real photos, the real command, headless Chromium.

Chromium is Debian's ``chromium`` package. Without it these browser tests skip, unless
``LUMINA_DEDUP_REQUIRE_SERVICES=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import upright_source
from PIL import Image

from lumina_plugin.commands.review import shown_locator
from lumina_plugin.decode.exif import display_camera
from lumina_plugin.engine import Engine
from lumina_plugin.review import ReviewError, check_out_dir, write_review
from lumina_plugin.review.model import human_bytes
from lumina_plugin.review.thumbs import THUMB_SIDE, ThumbCache, make_thumbnail, thumbnails

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())["groups"]
TRICKY = """it's <i id="pwned">&amp; "quoted" $HOME.jpg"""


# -- helpers -------------------------------------------------------------------------------
def chromium() -> str:
    """The Chromium binary, or skip (fail under LUMINA_DEDUP_REQUIRE_SERVICES=1)."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found:
        return found
    if os.environ.get("LUMINA_DEDUP_REQUIRE_SERVICES") == "1":
        pytest.fail("chromium is required here (LUMINA_DEDUP_REQUIRE_SERVICES=1): apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


def browse(profile: Path, *args: str) -> str:
    """Run headless Chromium with a throw-away profile; return its stdout."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def cli(*args: str, env: dict[str, str] | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env=full_env)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


def photo_state(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


class Cards(HTMLParser):
    """Reads the report's DOM: per ``article.group`` its attributes, visible text, members
    (path, section, class, resolution text) and ``<img>`` sources."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict] = []
        self.header_text: list[str] = []
        self.links: list[str] = []
        self._section = ""
        self._dd = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "article" and "group" in (a.get("class") or "").split():
            self.cards.append({"attrs": a, "text": [], "members": [], "imgs": []})
        elif not self.cards:
            return
        elif tag == "section":
            self._section = a.get("class") or ""
        elif tag == "figure":
            self.cards[-1]["members"].append({"path": a.get("data-path"), "section": self._section,
                                              "class": a.get("class"), "facts": {}})
        elif tag == "img":
            self.cards[-1]["imgs"].append(a.get("src") or "")
        elif tag == "dd":
            self._dd = a.get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "dd":
            self._dd = ""

    def handle_data(self, data: str) -> None:
        if not self.cards:
            self.header_text.append(data)
            return
        self.cards[-1]["text"].append(data)
        if self._dd and self.cards[-1]["members"]:
            facts = self.cards[-1]["members"][-1]["facts"]
            facts[self._dd] = facts.get(self._dd, "") + data


def card_text(card: dict) -> str:
    return "".join(card["text"])


# -- the sample library, imported once for the module --------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("review")
    lib = root / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    catalog = root / "catalog.db"
    with Engine(catalog) as engine:
        engine.find_duplicates([lib])
        groups = engine.review().as_json()["groups"]
    before = photo_state(lib)
    env = {"XDG_CONFIG_HOME": str(root / "xdg")}
    out = json.loads(cli("review", "--catalog", str(catalog), "--json", env=env).stdout)
    return {"root": root, "lib": lib, "catalog": catalog, "out": out, "groups": groups,
            "before": before, "env": env}


@pytest.fixture(scope="module")
def dom(sample: dict, tmp_path_factory: pytest.TempPathFactory) -> Cards:
    index = Path(sample["out"]["report"])
    return Cards(browse(tmp_path_factory.mktemp("profile"), "--dump-dom", index.as_uri()))


def test_review_json_names_the_report_beside_the_catalog(sample: dict) -> None:
    out, catalog = sample["out"], sample["catalog"]
    assert out == {"report": str(catalog.with_name("catalog.db.review") / "index.html"),
                   "groups": len(EXPECTED), "pages": 1, "vanished": [], "unavailable": []}
    assert Path(out["report"]).is_file()


def test_report_changes_no_photo_and_writes_nothing_in_the_library(sample: dict) -> None:
    assert photo_state(sample["lib"]) == sample["before"]


def test_chromium_shows_every_group_in_one_card(sample: dict, dom: Cards) -> None:
    lib = sample["lib"]
    assert len(dom.cards) == len(EXPECTED)
    for expected in EXPECTED:
        paths = {str(lib / p) for p in expected}
        holding = [c for c in dom.cards if paths <= {m["path"] for m in c["members"]}]
        assert len(holding) == 1, expected
        text = card_text(holding[0])
        for p in expected:  # visible text: every file name and full path
            assert Path(p).name in text and str(lib / p) in text
        assert {m["path"] for m in holding[0]["members"]} == paths


def test_cards_mark_the_keeper_set_exact_copies_apart_and_show_the_facts(sample: dict, dom: Cards) -> None:
    by_keeper = {g["keeper"]: g for g in sample["groups"]}
    for card in dom.cards:
        keeper = [m for m in card["members"] if "keeper" in m["class"].split()]
        assert len(keeper) == 1 and keeper[0]["section"] == "keeper"
        group = by_keeper[keeper[0]["path"]]
        assert "because: " + group["reason"] in card_text(card)
        assert card["attrs"]["data-savable"] == str(group["savable_bytes"])
        for m, seen in ((m, next(s for s in card["members"] if s["path"] == m["path"])) for m in group["members"]):
            if m["role"] != "keeper":
                assert seen["section"] == ("exact" if m["kind"] == "exact" else "near")
            assert seen["facts"]["resolution"].startswith(f"{m['width']} × {m['height']}")
            assert seen["facts"]["format"] == m["format"]
            assert seen["facts"]["size"] == human_bytes(m["size_bytes"])
            assert seen["facts"]["camera"] == (display_camera(m["camera"]) or "unknown")  # make and model only
        text = card_text(card)
        for m in group["members"]:
            if m["role"] != "keeper":
                assert f"lumina-dedup decide keeper {shlex.quote(m['path'])} --catalog" in text
                assert (f"lumina-dedup decide not-duplicate {shlex.quote(group['keeper'])} "
                        f"{shlex.quote(m['path'])} --catalog {shlex.quote(str(sample['catalog']))}") in text
        assert len(card["imgs"]) == len(card["members"])
        for src in card["imgs"]:
            assert src.startswith("data:image/jpeg;base64,")
            with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
                assert im.format == "JPEG" and max(im.size) <= THUMB_SIDE


def test_groups_are_sorted_by_space_saved_and_the_total_is_shown(sample: dict, dom: Cards) -> None:
    saved = [int(c["attrs"]["data-savable"]) for c in dom.cards]
    assert saved == sorted(saved, reverse=True)
    header = " ".join("".join(dom.header_text).split())
    assert f"{human_bytes(sum(saved))} could be saved in {len(EXPECTED)} groups" in header


def test_screenshot(sample: dict, tmp_path: Path) -> None:
    shot = tmp_path / "review.png"
    browse(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1600",
           Path(sample["out"]["report"]).as_uri())
    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        colours = im.convert("RGB").resize((64, 80)).getcolors(64 * 80)
        assert colours is None or len(colours) > 50  # thumbnails drawn, not a blank page


def test_phone_width_has_no_sideways_scrolling(sample: dict, tmp_path: Path) -> None:
    # A 390 px wide frame (a phone) around the report; the harness writes what it measured.
    index = Path(sample["out"]["report"])
    harness = tmp_path / "phone.html"
    harness.write_text(
        f'<!DOCTYPE html><body><iframe id="f" style="width:390px;height:844px;border:0" '
        f'src="{index.as_uri()}"></iframe><script>document.getElementById("f").onload = function () {{'
        'var d = this.contentDocument.documentElement; document.body.setAttribute("data-widths", '
        'd.scrollWidth + " " + d.clientWidth); };</script></body>')
    out = browse(tmp_path / "profile", "--allow-file-access-from-files", "--virtual-time-budget=10000",
                 "--dump-dom", harness.as_uri())
    scroll, client = map(int, re.search(r'data-widths="(\d+) (\d+)"', out).groups())
    assert client <= 390 and scroll <= client


# -- user data is escaped, and the commands it shows work ------------------------------------
def test_paths_are_escaped_and_a_copied_command_flows_back(make_photo, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    original = make_photo("lib/a/original.jpg", size=(640, 400))
    tricky = lib / "b" / TRICKY
    tricky.parent.mkdir(parents=True)
    shutil.copy(original, tricky)
    make_photo("lib/b/small.jpg", size=(320, 200))
    catalog = tmp_path / "c.db"
    with Engine(catalog) as engine:
        engine.find_duplicates([lib])
    out = json.loads(cli("review", "--catalog", str(catalog), "--json").stdout)
    dom_text = browse(tmp_path / "profile", "--dump-dom", Path(out["report"]).as_uri())
    assert "<i id" not in dom_text and html.escape(TRICKY, quote=False) in dom_text  # text, not markup
    cards = Cards(dom_text).cards
    assert len(cards) == 1 and str(tricky) in {m["path"] for m in cards[0]["members"]}
    assert next(m for m in cards[0]["members"] if "keeper" in m["class"])["path"] == str(original)
    # Copy "keep this one instead" shown under the tricky copy; run it as a shell would split it.
    commands = [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", dom_text, re.S)]
    argv = shlex.split(next(c for c in commands if " keeper " in c and "small.jpg" not in c))
    assert argv == ["lumina-dedup", "decide", "keeper", str(tricky), "--catalog", str(catalog)]
    cli(*argv[1:])
    again = json.loads(cli("review", "--catalog", str(catalog), "--json").stdout)
    cards = Cards(Path(again["report"]).read_text()).cards
    assert len(cards) == 1
    assert next(m for m in cards[0]["members"] if "keeper" in m["class"])["path"] == str(tricky)


def test_out_folder_inside_a_photo_folder_is_refused(sample: dict) -> None:
    for out in (sample["lib"] / "2015" / "2015-10-29" / "report", sample["lib"]):
        proc = cli("review", "--catalog", str(sample["catalog"]), "--out", str(out), check=2, env=sample["env"])
        assert "photo folder" in proc.stderr
    assert photo_state(sample["lib"]) == sample["before"]
    photo = str(sample["lib"] / "2015/2015-10-29/IMG_8812.jpg")
    with pytest.raises(ReviewError):
        check_out_dir(sample["lib"] / "2015" / "2015-10-29", [photo])
    check_out_dir(sample["lib"] / "2016", [photo])  # a sibling folder is fine


def test_open_starts_the_browser_on_the_report(sample: dict, tmp_path: Path) -> None:
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {shlex.quote(str(record))}\n')
    browser.chmod(0o755)
    out_dir = tmp_path / "report"
    proc = cli("review", "--catalog", str(sample["catalog"]), "--out", str(out_dir), "--open",
               env={**sample["env"], "BROWSER": str(browser)})
    assert proc.stdout.strip() == str(out_dir / "index.html")
    assert record.read_text() == (out_dir / "index.html").as_uri()


def test_no_catalog_is_an_error(tmp_path: Path) -> None:
    proc = cli("review", "--catalog", str(tmp_path / "none.db"), check=1)
    assert "no catalog" in proc.stderr and not (tmp_path / "none.db").exists()


def test_a_postgres_catalog_is_named_without_its_password() -> None:
    url = "postgresql://ann:s3cret@db:5432/lumina?catalog=7"
    assert shown_locator(argparse.Namespace(catalog=url)) == "postgresql://ann@db:5432/lumina?catalog=7"


# -- 10,000 groups: pages --------------------------------------------------------------------
def test_ten_thousand_groups_make_linked_pages(tmp_path: Path, make_photo) -> None:
    a, b = str(make_photo("p/a.jpg")), str(make_photo("p/b.jpg", size=(320, 200)))
    groups = [{"id": f"g{i:05d}", "keeper": a, "reason": "higher resolution", "similarity_type": "perceptual",
               "confidence": 90, "savable_bytes": i,
               "members": [{"path": a, "kind": "exact", "distance": 0, "role": "keeper"},
                           {"path": b, "kind": "near", "distance": 3, "role": "duplicate"}]}
              for i in range(10_000)]
    out_dir = tmp_path / "report"
    (out_dir).mkdir()
    (out_dir / "page-101.html").write_text("left from a longer report")
    started = time.monotonic()
    result = write_review(groups, out_dir, tmp_path / "c.db", thumbs=False)
    assert time.monotonic() - started < 20
    assert (result.groups, result.pages) == (10_000, 100)
    assert not (out_dir / "page-101.html").exists()
    pages = sorted(out_dir.glob("*.html"))
    assert len(pages) == 100
    first, last = Cards((out_dir / "index.html").read_text()), Cards((out_dir / "page-100.html").read_text())
    assert [c["attrs"]["data-group-id"] for c in first.cards][:2] == ["g09999", "g09998"]
    assert len(first.cards) == 100 and len(last.cards) == 100
    assert last.cards[-1]["attrs"]["data-group-id"] == "g00000"
    for page in pages:
        for href in set(re.findall(r'<a href="([^"#]+)"', page.read_text())):
            assert (out_dir / href).is_file(), (page.name, href)
    assert "page-2.html" in first.links and "page-99.html" in last.links and "page-101.html" not in last.links


# -- thumbnails ------------------------------------------------------------------------------
def test_thumbnail_is_upright_small_and_cached(make_photo, tmp_path: Path) -> None:
    turned = make_photo("turned.jpg", size=(640, 400), orientation=6)  # stored portrait, shown landscape
    with Image.open(turned) as im:
        assert im.size == (400, 640)
    thumb = Image.open(io.BytesIO(make_thumbnail(turned)))
    assert thumb.size == (THUMB_SIDE, THUMB_SIDE * 400 // 640)
    expected = upright_source().convert("RGB").resize(thumb.size)
    wrong = upright_source().convert("RGB").transpose(Image.Transpose.ROTATE_90).resize(thumb.size)
    def diff(x):
        return int(np.abs(np.asarray(thumb.convert("L"), float) - np.asarray(x.convert("L"), float)).sum())
    assert diff(expected) * 3 < diff(wrong)

    clear = make_photo("clear.png", size=(300, 200), mode="RGBA")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    cache = ThumbCache(tmp_path / "thumbs.sqlite")
    uris = thumbnails([str(turned), str(clear), str(broken), str(tmp_path / "gone.jpg")], cache)
    assert uris[str(broken)] is None and uris[str(tmp_path / "gone.jpg")] is None
    assert uris[str(clear)].startswith("data:image/jpeg;base64,")
    cache.close()
    cache = ThumbCache(tmp_path / "thumbs.sqlite")
    assert cache.conn.execute("SELECT COUNT(*) FROM thumbs").fetchone()[0] == 2
    os.utime(turned, (1, 1))  # changed on disk: made again, the old entry pruned
    assert thumbnails([str(turned)], cache)[str(turned)] == uris[str(turned)]
    cache.close()
    cache = ThumbCache(tmp_path / "thumbs.sqlite")
    assert [r[0] for r in cache.conn.execute("SELECT mtime_ns FROM thumbs")] == [1_000_000_000]
    cache.close()
