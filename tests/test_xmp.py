"""XMP sidecars written by lumina_plugin.xmp, read back by exiv2 (pyexiv2: the library
digiKam and darktable read sidecars with) and, where installed, Exempi (Adobe's XMP
toolkit). Real photos, real sidecar files in the forms darktable and digiKam write."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from lumina_plugin.xmp import XmpError, read_tags, sidecar_for, write_many, write_tags

try:
    import pyexiv2
except ImportError:  # a dev dependency: required in CI, skipped where it is not installed
    if os.environ.get("LUMINA_DEDUP_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("pyexiv2 is not installed (pip install pyexiv2)", allow_module_level=True)
pyexiv2.set_log_level(4)  # mute exiv2's own warnings

OURS = {"lumina-dedup:duplicate", "lumina-dedup:near-copy"}
PATHS = {"lumina-dedup|duplicate", "lumina-dedup|near-copy"}

#: darktable 4.x: simple properties as attributes of rdf:Description, an <?xml?> declaration.
DARKTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   exif:DateTimeOriginal="2021:03:14 10:42:07"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_0412.jpg"
   darktable:import_timestamp="63791842345000000"
   darktable:xmp_version="5"
   darktable:history_end="0">
   <darktable:history>
    <rdf:Seq/>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Paris</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>darktable|format|jpg</rdf:li>
     <rdf:li>places|France|Paris</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

#: digiKam 8: properties as elements, TagsList first, an <?xpacket?> wrapper with padding,
#: and a person's own flat keyword "keeper" (which our keeper tag must never remove).
DIGIKAM = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>People/Family</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <xmp:Rating>3</xmp:Rating>
   <MicrosoftPhoto:LastKeywordXMP>
    <rdf:Bag>
     <rdf:li>People/Family</rdf:li>
    </rdf:Bag>
   </MicrosoftPhoto:LastKeywordXMP>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Family</rdf:li>
     <rdf:li>keeper</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>People|Family</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
""" + " " * 2000 + """
<?xpacket end="w"?>"""


def exiv2(path: Path) -> dict:
    img = pyexiv2.Image(str(path))
    try:
        return img.read_xmp()
    finally:
        img.close()


def state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def not_ours(xmp: dict) -> dict:
    return {k: v for k, v in xmp.items()
            if k not in ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject") and not k.startswith("Xmp.luminaDedup.")}


def test_new_sidecar_is_read_back_by_exiv2(make_photo, tmp_path: Path) -> None:
    photo = make_photo("IMG_1.jpg", mtime=1_600_000_000)
    before = state(photo)
    sidecar = write_tags(photo, add=OURS)
    assert sidecar == tmp_path / "IMG_1.jpg.xmp"  # darktable/digiKam naming by default
    xmp = exiv2(sidecar)
    assert sorted(xmp["Xmp.dc.subject"]) == ["duplicate", "near-copy"]
    assert sorted(xmp["Xmp.lr.hierarchicalSubject"]) == sorted(PATHS)
    assert read_tags(photo) == PATHS
    assert state(photo) == before  # the photo is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_1.jpg", "IMG_1.jpg.xmp"]  # no temp file left


def test_exempi_reads_it_too(make_photo) -> None:
    try:
        from libxmp import XMPMeta
        from libxmp.consts import XMP_NS_DC
    except Exception as exc:  # python-xmp-toolkit absent, or Exempi (libexempi8) absent
        pytest.skip(f"Exempi not available: {exc}")
    photo = make_photo("IMG_2.jpg")
    meta = XMPMeta()
    meta.parse_from_str(write_tags(photo, add=OURS).read_text())
    subjects = {meta.get_array_item(XMP_NS_DC, "subject", i + 1)
                for i in range(meta.count_array_items(XMP_NS_DC, "subject"))}
    assert subjects == {"duplicate", "near-copy"}
    lr = "http://ns.adobe.com/lightroom/1.0/"
    assert {meta.get_array_item(lr, "hierarchicalSubject", i + 1)
            for i in range(meta.count_array_items(lr, "hierarchicalSubject"))} == PATHS


def test_merges_into_a_darktable_sidecar_and_removal_restores_it(make_photo, tmp_path: Path) -> None:
    photo = make_photo("IMG_0412.jpg")
    sidecar = tmp_path / "IMG_0412.jpg.xmp"
    sidecar.write_text(DARKTABLE)
    original = exiv2(sidecar)
    assert write_tags(photo, add=OURS) == sidecar
    merged = exiv2(sidecar)
    assert not_ours(merged) == not_ours(original)  # every attribute-form property kept
    assert merged["Xmp.dc.subject"] == ["Paris", "duplicate", "near-copy"]
    assert merged["Xmp.lr.hierarchicalSubject"] == ["darktable|format|jpg", "places|France|Paris", *sorted(PATHS)]
    text = sidecar.read_text()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<x:xmpmeta')
    assert 'darktable:xmp_version="5"' in text and "<darktable:history>" in text
    assert read_tags(photo) == {"darktable|format|jpg", "places|France|Paris", *PATHS}

    assert write_tags(photo, remove=OURS) == sidecar  # not ours to delete
    assert exiv2(sidecar) == original


def test_merges_into_a_digikam_sidecar_keeping_its_form_and_the_persons_keywords(make_photo, tmp_path: Path) -> None:
    photo = make_photo("DSC_7.jpg")
    sidecar = tmp_path / "DSC_7.jpg.xmp"
    sidecar.write_text(DIGIKAM)
    original = exiv2(sidecar)
    write_tags(photo, add={"lumina-dedup:duplicate", "lumina-dedup:keeper"})
    merged = exiv2(sidecar)
    assert merged["Xmp.xmp.Rating"] == "3"
    # digiKam reads TagsList first: our paths are there too, in its "/" form.
    assert merged["Xmp.digiKam.TagsList"] == ["People/Family", "lumina-dedup/duplicate", "lumina-dedup/keeper"]
    assert merged["Xmp.MicrosoftPhoto.LastKeywordXMP"][1:] == ["lumina-dedup/duplicate", "lumina-dedup/keeper"]
    assert merged["Xmp.dc.subject"] == ["Family", "keeper", "duplicate"]  # "keeper" was already there
    text = sidecar.read_text(encoding="utf-8")
    assert text.startswith('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>')
    assert text.endswith(" " * 2000 + '\n<?xpacket end="w"?>')
    assert "<digiKam:TagsList>" in text and "<xmp:Rating>3</xmp:Rating>" in text  # prefixes, element form

    write_tags(photo, remove={"lumina-dedup:duplicate", "lumina-dedup:keeper"})
    after = exiv2(sidecar)
    assert after == original  # the person's own "keeper" keyword survives
    assert read_tags(photo) == {"People|Family", "keeper"}  # a flat keyword no path ends in


def test_sidecar_naming(make_photo, tmp_path: Path) -> None:
    lone = make_photo("lr/IMG_5.jpg")
    lightroom = tmp_path / "lr" / "IMG_5.xmp"
    lightroom.write_text(DARKTABLE)
    assert write_tags(lone, add=OURS) == lightroom  # an existing photo.xmp is used...
    assert not (tmp_path / "lr" / "IMG_5.jpg.xmp").exists()

    both = make_photo("both/IMG_6.jpg")
    (tmp_path / "both" / "IMG_6.xmp").write_text(DARKTABLE)
    (tmp_path / "both" / "IMG_6.jpg.xmp").write_text(DIGIKAM)
    assert sidecar_for(both) == tmp_path / "both" / "IMG_6.jpg.xmp"  # ...photo.ext.xmp first

    jpeg = make_photo("pair/IMG_7.jpg")
    (tmp_path / "pair" / "IMG_7.CR2").write_bytes(b"raw bytes")
    raw_sidecar = tmp_path / "pair" / "IMG_7.xmp"
    raw_sidecar.write_text(DARKTABLE)
    before = state(raw_sidecar)
    assert write_tags(jpeg, add=OURS) == tmp_path / "pair" / "IMG_7.jpg.xmp"  # IMG_7.xmp is the raw's
    assert state(raw_sidecar) == before


def test_we_delete_only_a_sidecar_we_created_that_holds_nothing_else(make_photo, tmp_path: Path) -> None:
    photo = make_photo("a.jpg")
    sidecar = write_tags(photo, add=OURS)
    assert write_tags(photo, remove={"lumina-dedup:near-copy"}) == sidecar
    assert read_tags(photo) == {"lumina-dedup|duplicate"}
    assert write_tags(photo, remove=OURS) is None and not sidecar.exists()
    assert write_tags(photo, remove=OURS) is None and not sidecar.exists()  # nothing to do, nothing made

    sidecar = write_tags(photo, add=OURS)
    img = pyexiv2.Image(str(sidecar))  # another program rates the photo in our sidecar
    img.modify_xmp({"Xmp.xmp.Rating": "4"})
    img.close()
    assert write_tags(photo, remove=OURS) == sidecar
    assert exiv2(sidecar)["Xmp.xmp.Rating"] == "4" and read_tags(photo) == set()


def test_unchanged_tags_do_not_rewrite_and_permissions_stay(make_photo, tmp_path: Path) -> None:
    photo = make_photo("b.jpg")
    sidecar = tmp_path / "b.jpg.xmp"
    sidecar.write_text(DIGIKAM)
    os.chmod(sidecar, 0o640)
    write_tags(photo, add=OURS)
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o640
    os.utime(sidecar, ns=(1_000_000_000, 1_000_000_000))
    before = state(sidecar)
    assert write_tags(photo, add=OURS) == sidecar
    assert state(sidecar) == before  # darktable's "look for updated XMP files" sees nothing new


def test_unsafe_or_unreadable_sidecars_are_refused_untouched(make_photo, tmp_path: Path) -> None:
    photo = make_photo("c.jpg")
    sidecar = tmp_path / "c.jpg.xmp"
    laughs = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
              '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>')
    for content in (laughs.encode(), b"not xml at all", DARKTABLE.encode("utf-16"),
                    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'):
        sidecar.write_bytes(content)
        with pytest.raises(XmpError):
            write_tags(photo, add=OURS)
        assert sidecar.read_bytes() == content
    errors = write_many({str(photo): (OURS, ()), str(make_photo("d.jpg")): (OURS, ())})
    assert [p for p, _ in errors] == [str(photo)] and read_tags(tmp_path / "d.jpg") == PATHS
    with pytest.raises(FileNotFoundError):
        write_tags(tmp_path / "gone.jpg", add=OURS)
