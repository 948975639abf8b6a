"""XMP sidecars: the duplicate tags where digiKam, darktable and Lightroom read keywords.

A tag is written twice, as those applications do: its leaf in ``dc:subject`` (a flat
``rdf:Bag``) and its whole path in ``lr:hierarchicalSubject`` (``|`` separated), e.g.
``near-copy`` and ``lumina-dedup|near-copy``. digiKam reads the first of
``digiKam:TagsList``, ``MicrosoftPhoto:LastKeywordXMP``, ``lr:hierarchicalSubject``,
``mediapro:CatalogSets`` that a sidecar has (Immich: TagsList first), so a sidecar that
already has one of the others gets the path there too, in its own separator. Catalog
names such as ``lumina-dedup:near-copy`` are accepted (:func:`tag_path`).

Pure Python on purpose: ``defusedxml`` parses (sidecars come from other programs: no
entity expansion), :mod:`xml.etree` holds the tree and a small serializer here writes
it back with the file's own prefixes and namespace declarations, its ``<?xpacket?>``
or ``<?xml?>`` wrapper and padding, comments, and unknown properties in the attribute
or the element form of ``rdf:Description``. No system library needed (python-xmp-toolkit
needs Exempi); pyexiv2 would re-serialize the whole packet in exiv2's own layout.

Ownership, so that removing our tags never removes someone else's: a leaf we put
into ``dc:subject`` is listed in ``luminaDedup:subjects``; a leaf that was already
there (a person's own ``keeper`` keyword) is never removed. A sidecar we created is
marked ``luminaDedup:created``; it is deleted only when nothing but that mark is left.

Writes are atomic (a temporary file in the same folder, then :func:`os.replace`),
skipped when nothing changes (so darktable's "look for updated XMP files" stays
quiet), and never touch the photo. Not safe for two threads on one sidecar.
"""

from __future__ import annotations

import os
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path

from defusedxml.ElementTree import DefusedXMLParser

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
MSPHOTO = "http://ns.microsoft.com/photo/1.0/"
MEDIAPRO = "http://ns.iview-multimedia.com/mediapro/1.0/"
X = "adobe:ns:meta/"
#: Our own namespace: which dc:subject leaves we added, and whether we created the file.
OURS = "http://ns.lumina-dedup.org/xmp/1.0/"
PREFIXES = {X: "x", RDF: "rdf", DC: "dc", LR: "lr", DIGIKAM: "digiKam", MSPHOTO: "MicrosoftPhoto",
            MEDIAPRO: "mediapro", OURS: "luminaDedup", "http://www.w3.org/XML/1998/namespace": "xml"}

SUBJECT, HIERARCHY = f"{{{DC}}}subject", f"{{{LR}}}hierarchicalSubject"
#: Other keyword-path fields, kept in step only where a sidecar already has them:
#: (property, separator, array kind).
MIRRORS = ((f"{{{DIGIKAM}}}TagsList", "/", "Seq"), (f"{{{MSPHOTO}}}LastKeywordXMP", "/", "Bag"),
           (f"{{{MEDIAPRO}}}CatalogSets", "|", "Bag"))
OWNED, CREATED = f"{{{OURS}}}subjects", f"{{{OURS}}}created"
DESCRIPTION, LI, ABOUT = f"{{{RDF}}}Description", f"{{{RDF}}}li", f"{{{RDF}}}about"
ARRAYS = {f"{{{RDF}}}{k}" for k in ("Bag", "Seq", "Alt")}

_NEW_SIDECAR = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    f'<x:xmpmeta xmlns:x="{X}" x:xmptk="lumina-dedup">\n'
    f' <rdf:RDF xmlns:rdf="{RDF}">\n'
    f'  <rdf:Description rdf:about="" xmlns:luminaDedup="{OURS}" luminaDedup:created="True"/>\n'
    ' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>\n')
_MISC = re.compile(r"(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*", re.S)
_ENCODING = re.compile(r"""<\?xml[^>]*encoding\s*=\s*["']([\w.-]+)""")


class XmpError(ValueError):
    """A sidecar that cannot be read or safely rewritten (not XML, not UTF-8, no rdf:RDF)."""


def tag_path(name: str) -> str:
    """The hierarchical form of a tag name: ``lumina-dedup:near-copy`` -> ``lumina-dedup|near-copy``."""
    return "|".join(p.strip() for p in re.split(r"[:|]", name) if p.strip())


def sidecar_for(photo: str | os.PathLike[str]) -> Path:
    """The sidecar of ``photo``: an existing ``photo.ext.xmp``, else an existing ``photo.xmp``
    (Lightroom's raw form) when no other file shares the photo's stem (with RAW+JPEG,
    ``IMG_1.xmp`` belongs to the raw), else ``photo.ext.xmp`` (darktable, digiKam)."""
    photo = Path(photo)
    for name in (photo.name + ".xmp", photo.name + ".XMP"):
        if (photo.parent / name).is_file():
            return photo.parent / name
    for candidate in (photo.with_suffix(".xmp"), photo.with_suffix(".XMP")):
        if candidate.is_file() and not any(p.stem == photo.stem and p.name != photo.name and
                                           p.suffix.lower() != ".xmp" for p in photo.parent.iterdir()):
            return candidate
    return photo.parent / (photo.name + ".xmp")


class _Builder(ET.TreeBuilder):
    """A TreeBuilder that remembers which namespaces each element declared."""

    def __init__(self) -> None:
        super().__init__(insert_comments=True, insert_pis=True)
        self.pending: list[tuple[str, str]] = []
        self.decls: dict[ET.Element, list[tuple[str, str]]] = {}

    def start_ns(self, prefix: str, uri: str) -> None:
        self.pending.append((prefix or "", uri))

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        elem = super().start(tag, attrs)
        if self.pending:
            self.decls[elem], self.pending = self.pending, []
        return elem


class Sidecar:
    """One parsed sidecar: the tree, its declarations and the text around the root."""

    def __init__(self, text: str, bom: bool = False) -> None:
        enc = _ENCODING.search(text[:200])
        if enc and enc.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise XmpError(f"sidecar encoding {enc.group(1)} is not supported (UTF-8 only)")
        self.bom = bom
        builder = _Builder()
        parser = DefusedXMLParser(target=builder)
        try:
            parser.feed(text)
            self.root: ET.Element = parser.close()
        except (ET.ParseError, ValueError) as exc:  # defusedxml raises ValueError subclasses
            raise XmpError(f"not a readable XMP sidecar: {exc}") from exc
        self.decls = builder.decls
        start = _MISC.match(text).end()  # type: ignore[union-attr]
        qname = re.match(r"<([^\s/>]+)", text[start:])
        end = text.rfind(f"</{qname.group(1)}>") if qname else -1
        self.head = text[:start]
        self.tail = text[end + len(qname.group(1)) + 3:] if qname and end >= 0 else "\n"
        rdf = self.root if self.root.tag == f"{{{RDF}}}RDF" else self.root.find(f".//{{{RDF}}}RDF")
        if rdf is None:
            raise XmpError("not an XMP sidecar: no rdf:RDF element")
        self.rdf = rdf
        if not self.descriptions():
            self._new_description()

    @classmethod
    def load(cls, path: Path) -> Sidecar:
        data = path.read_bytes()
        try:
            return cls(data.decode("utf-8-sig"), bom=data.startswith(b"\xef\xbb\xbf"))
        except UnicodeDecodeError as exc:  # UTF-16 sidecars land here too
            raise XmpError(f"sidecar is not UTF-8: {exc}") from exc

    def descriptions(self) -> list[ET.Element]:
        return self.rdf.findall(DESCRIPTION)

    def _new_description(self) -> ET.Element:
        desc = ET.Element(DESCRIPTION, {ABOUT: ""})
        self._append(self.rdf, desc)
        return desc

    def _indent(self, elem: ET.Element) -> str | None:
        """The newline and spaces before ``elem`` in the file; None in a file on one line."""
        path = _path_to(self.root, elem) or []
        if len(path) < 2:
            return "\n"
        parent = path[-2]
        i = list(parent).index(elem)
        ws = (parent.text if i == 0 else parent[i - 1].tail) or ""
        return "\n" + ws.rsplit("\n", 1)[-1] if "\n" in ws and not ws.strip() else None

    def _append(self, parent: ET.Element, child: ET.Element) -> None:
        """Append ``child`` indented like its siblings (or one space deeper than ``parent``)."""
        base = self._indent(parent)
        kids = list(parent)
        if kids:  # the new child takes the last one's tail; the last one gets the siblings' gap
            gap = (kids[-2].tail if len(kids) > 1 else parent.text) or ""
            child.tail, kids[-1].tail = kids[-1].tail, "" if gap.strip() else gap
        elif base is not None:
            parent.text, child.tail = base + " ", base
        parent.append(child)

    # -- arrays ---------------------------------------------------------------------------
    def items(self, prop: str) -> list[str]:
        """The text items of an array property, over every rdf:Description."""
        return [li.text or "" for desc in self.descriptions() for el in desc.findall(prop)
                for arr in el if arr.tag in ARRAYS for li in arr.findall(LI)]

    def add_item(self, prop: str, value: str, kind: str = "Bag") -> bool:
        """Add ``value`` to the array ``prop`` (created in the first Description if absent)."""
        if value in self.items(prop):
            return False
        prop_el = next((el for d in self.descriptions() for el in d.findall(prop)), None)
        if prop_el is None:
            desc = self.descriptions()[0]
            self._declare(desc, prop)
            prop_el = ET.Element(prop)
            self._append(desc, prop_el)
        arr = next((a for a in prop_el if a.tag in ARRAYS), None)
        if arr is None:
            arr = ET.Element(f"{{{RDF}}}{kind}")
            self._append(prop_el, arr)
        li = ET.Element(LI)
        li.text = value
        self._append(arr, li)
        return True

    def remove_item(self, prop: str, value: str) -> bool:
        """Remove ``value`` from the array ``prop``; drop the property once it is empty."""
        changed = False
        for desc in self.descriptions():
            for el in desc.findall(prop):
                hit = False
                for arr in [a for a in el if a.tag in ARRAYS]:
                    for li in [li for li in arr.findall(LI) if (li.text or "") == value]:
                        _remove(arr, li)
                        hit = True
                    if hit and not len(arr):
                        _remove(el, arr)
                if hit and not len(el) and not (el.text or "").strip():
                    _remove(desc, el)
                changed |= hit
        return changed

    def _declare(self, elem: ET.Element, tag: str) -> None:
        """Declare ``tag``'s namespace on ``elem`` under its usual prefix, if that prefix is
        free (otherwise the serializer declares it, with another prefix, where it is used)."""
        uri = tag[1:].split("}")[0]
        scope = {p: u for e in _path_to(self.root, elem) or [elem] for p, u in self.decls.get(e, ())}
        if uri not in scope.values() and PREFIXES.get(uri, "") not in scope and uri in PREFIXES:
            self.decls.setdefault(elem, []).append((PREFIXES[uri], uri))

    # -- whole file -----------------------------------------------------------------------
    def only_our_mark_left(self) -> bool:
        """True when the sidecar holds nothing but our ``created`` mark."""
        expected = {self.root, self.rdf, *self.descriptions()}
        if any(e not in expected for e in self.root.iter()):
            return False  # other elements, comments or processing instructions
        return all(not (set(d.attrib) - {ABOUT, CREATED}) and not (d.text or "").strip()
                   for d in self.descriptions())

    def serialize(self) -> bytes:
        out: list[str] = []
        _write(self.root, self.decls, {"xml": "http://www.w3.org/XML/1998/namespace"}, out)
        return (b"\xef\xbb\xbf" if self.bom else b"") + (self.head + "".join(out) + self.tail).encode("utf-8")


def _path_to(root: ET.Element, target: ET.Element) -> list[ET.Element] | None:
    if root is target:
        return [root]
    for child in root:
        found = _path_to(child, target)
        if found:
            return [root, *found]
    return None


def _remove(parent: ET.Element, child: ET.Element) -> None:
    kids = list(parent)
    i = kids.index(child)
    if i == len(kids) - 1 and i > 0:
        kids[i - 1].tail = child.tail
    parent.remove(child)
    if not len(parent) and parent.text is not None and not parent.text.strip():
        parent.text = None


def _esc(text: str, attr: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attr:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return text


def _write(elem: ET.Element, decls: Mapping[ET.Element, list[tuple[str, str]]],
           scope: dict[str, str], out: list[str]) -> None:
    """Serialize ``elem`` with the prefixes its document declared (``scope``: prefix -> uri)."""
    if elem.tag is ET.Comment:
        out.append(f"<!--{elem.text or ''}-->")
    elif elem.tag is ET.ProcessingInstruction:
        out.append(f"<?{elem.text or ''}?>")
    else:
        own = list(decls.get(elem, ()))
        scope = {**scope, **dict(own)}
        by_uri = {u: p for p, u in scope.items()}

        def qname(tag: str) -> str:
            if not tag.startswith("{"):
                return tag
            uri, local = tag[1:].split("}", 1)
            if uri not in by_uri:  # a namespace nobody declared: declare it here
                prefix = PREFIXES.get(uri) or f"ns{len(scope)}"
                while prefix in scope:
                    prefix += "_"
                own.append((prefix, uri))
                scope[prefix], by_uri[uri] = uri, prefix
            prefix = by_uri[uri]
            return f"{prefix}:{local}" if prefix else local

        name = qname(elem.tag)
        attrs = [f'{qname(k)}="{_esc(v, True)}"' for k, v in elem.attrib.items()]
        xmlns = [f'xmlns{":" + p if p else ""}="{_esc(u, True)}"' for p, u in own]
        out.append("<" + " ".join([name, *xmlns, *attrs]))
        if len(elem) or elem.text:
            out.append(">" + _esc(elem.text or ""))
            for child in elem:
                _write(child, decls, scope, out)
            out.append(f"</{name}>")
        else:
            out.append("/>")
    out.append(_esc(elem.tail or ""))


def read_tags(photo_path: str | os.PathLike[str]) -> set[str]:
    """Every keyword in the photo's sidecar, hierarchical ones as ``a|b``: the paths of
    ``lr:hierarchicalSubject`` and of the :data:`MIRRORS`, plus the ``dc:subject``
    leaves no path ends in. Empty when there is no sidecar."""
    path = sidecar_for(photo_path)
    if not path.is_file():
        return set()
    car = Sidecar.load(path)
    paths = _paths(car)
    leaves = {p.rsplit("|", 1)[-1] for p in paths}
    return paths | {s for s in car.items(SUBJECT) if s not in leaves}


def _paths(car: Sidecar) -> set[str]:
    found = set(car.items(HIERARCHY))
    for prop, sep, _kind in MIRRORS:
        found |= {t.replace(sep, "|") for t in car.items(prop)}
    return found


def write_tags(photo_path: str | os.PathLike[str], add: Iterable[str] = (),
               remove: Iterable[str] = ()) -> Path | None:
    """Add and remove tags in the photo's sidecar, keeping everything else in it.

    Tags are hierarchical paths (``lumina-dedup|near-copy``) or catalog names
    (``lumina-dedup:near-copy``). Returns the sidecar's path if one exists afterwards,
    None if there is none (nothing to add, or ours was deleted because it became empty).
    Raises :class:`XmpError` for a sidecar it cannot rewrite safely, OSError for I/O.
    """
    photo = Path(photo_path)
    if not photo.is_file():
        raise FileNotFoundError(f"no such photo: {photo}")
    add_paths = {tag_path(t) for t in add} - {""}
    remove_paths = {tag_path(t) for t in remove} - {""} - add_paths
    path = sidecar_for(photo)
    target = Path(os.path.realpath(path))  # a symlinked sidecar is written through the link
    for _attempt in range(3):
        st = target.stat() if target.exists() else None
        if st is None and not add_paths:
            return None
        car = Sidecar.load(target) if st is not None else Sidecar(_NEW_SIDECAR)
        before = car.serialize() if st is not None else b""
        _apply(car, add_paths, remove_paths)
        if st is not None and any(d.get(CREATED) for d in car.descriptions()) and car.only_our_mark_left():
            target.unlink()
            return None
        data = car.serialize()
        if data == before or _replace(target, data, st):
            return path
    raise XmpError(f"{path} kept changing while it was being updated")


def _apply(car: Sidecar, add: set[str], remove: set[str]) -> None:
    """Add then remove paths; drop the dc:subject leaves we own that no path ends in any more."""
    mirrors = [m for m in MIRRORS if any(d.find(m[0]) is not None for d in car.descriptions())]
    for p in sorted(add):
        car.add_item(HIERARCHY, p)
        if car.add_item(SUBJECT, p.rsplit("|", 1)[-1]):
            car.add_item(OWNED, p.rsplit("|", 1)[-1])
        for prop, sep, kind in mirrors:
            car.add_item(prop, p.replace("|", sep), kind)
    for p in sorted(remove):
        car.remove_item(HIERARCHY, p)
        for prop, sep, _kind in MIRRORS:
            car.remove_item(prop, p.replace("|", sep))
    left = {p.rsplit("|", 1)[-1] for p in _paths(car)}
    for leaf in set(car.items(OWNED)) - left:
        car.remove_item(SUBJECT, leaf)
        car.remove_item(OWNED, leaf)
    if not any(OURS in e.tag or any(OURS in k for k in e.attrib) for e in car.root.iter() if isinstance(e.tag, str)):
        for decls in car.decls.values():  # our namespace is no longer used: drop its declaration
            decls[:] = [d for d in decls if d[1] != OURS]


def _replace(target: Path, data: bytes, seen: os.stat_result | None) -> bool:
    """Write ``data`` to ``target`` atomically; False if the file changed since ``seen``."""
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if seen is not None:
            os.chmod(tmp, seen.st_mode & 0o7777)
        now = target.stat() if target.exists() else None
        if (now and (now.st_mtime_ns, now.st_size)) != (seen and (seen.st_mtime_ns, seen.st_size)):
            os.unlink(tmp)  # another program changed the sidecar meanwhile: start again
            return False
        os.replace(tmp, target)
        return True
    except BaseException:
        if tmp.exists():
            os.unlink(tmp)
        raise


def write_many(changes: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> list[tuple[str, str]]:
    """``write_tags`` for many photos (path -> (add, remove)); returns (path, error) for
    each photo whose sidecar could not be written, and goes on with the others."""
    errors: list[tuple[str, str]] = []
    for photo, (add, remove) in sorted(changes.items()):
        try:
            write_tags(photo, add, remove)
        except (OSError, XmpError) as exc:
            errors.append((photo, f"sidecar not written: {exc}"))
    return errors
