"""The review pages as HTML: one card per group, responsive, no framework, no network.

Every piece of user data (paths, camera names, reasons) goes through :func:`html.escape`;
the only script is a few lines that copy a decide command to the clipboard, and the
page works without it (the commands are selectable text).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime

from .model import GroupView, MemberView, human_bytes, keeper_command, not_duplicate_command

CSS = """
:root{color-scheme:light dark;--bg:#f4f4f1;--card:#fff;--fg:#1d1d1f;--muted:#5f6368;--line:#d9d9d4;
--keep:#1a7f37;--exact:#0b57d0;--near:#a15c00;--code:#f0f0ec}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--card:#1e1e1f;--fg:#ececec;--muted:#a8a8a8;
--line:#3a3a3a;--keep:#4ac26b;--exact:#7cacf8;--near:#f0a24b;--code:#2a2a2b}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.wrap{max-width:1240px;margin:0 auto;padding:12px}
h1{font-size:1.5rem;margin:.2em 0}
h2{font-size:1.1rem;margin:0}
h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:12px 0 6px}
.totals{font-size:1.05rem;margin:.3em 0}
.totals strong{font-size:1.2rem}
.muted,.hint{color:var(--muted);font-size:.85rem}
nav.pager{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:10px 0}
nav.pager a,nav.pager span{padding:4px 10px;border:1px solid var(--line);border-radius:6px;text-decoration:none;
color:inherit;background:var(--card)}
nav.pager .here{font-weight:600;border-color:var(--fg)}
.group{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px;margin:0 0 16px}
.group>header{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:baseline}
.group>header a{color:inherit;text-decoration:none}
.saves{font-weight:600}
.badge{display:inline-block;font-size:.75rem;padding:1px 7px;border-radius:999px;border:1px solid currentColor}
.badge.keeper{color:var(--keep)}.badge.exact{color:var(--exact)}.badge.near{color:var(--near)}
.reason{margin:6px 0 0}
.sections{display:flex;flex-wrap:wrap;gap:0 18px;align-items:flex-start}
.members{display:flex;flex-wrap:wrap;gap:10px}
.member{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;width:270px;min-width:0}
@media (max-width:600px){.sections,.sections>section{width:100%}.member{width:100%}}
.member.keeper{border:2px solid var(--keep)}
.member.exact{border-left:4px solid var(--exact)}
.member.near{border-left:4px solid var(--near)}
.thumb{display:flex;align-items:center;justify-content:center;height:190px;background:var(--code);border-radius:6px;
overflow:hidden}
.thumb img{max-width:100%;max-height:190px;width:auto;height:auto;display:block}
.nothumb{color:var(--muted);font-size:.85rem;padding:8px;text-align:center}
.name{font-weight:600;margin:6px 0 2px;overflow-wrap:anywhere}
.facts{margin:0;font-size:.85rem}
.facts div{display:flex;gap:6px}
.facts dt{color:var(--muted);min-width:4.8em}
.facts dd{margin:0;overflow-wrap:anywhere;min-width:0}
.path{font-size:.78rem;color:var(--muted);overflow-wrap:anywhere;margin:4px 0}
.decide{margin-top:6px}
.decide p{margin:6px 0 2px;font-size:.8rem;color:var(--muted)}
.cmd{display:flex;gap:4px;align-items:flex-start}
code{display:block;flex:1;min-width:0;font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:var(--code);padding:4px 6px;border-radius:4px;overflow-wrap:anywhere;white-space:pre-wrap;user-select:all}
button.copy{font-size:.75rem;padding:2px 6px;border:1px solid var(--line);border-radius:4px;background:var(--card);
color:inherit;cursor:pointer}
footer{margin:20px 0;color:var(--muted);font-size:.8rem}
"""

SCRIPT = """
document.addEventListener("click", function (e) {
  var b = e.target.closest ? e.target.closest("button.copy") : null;
  if (!b) return;
  var code = b.parentNode.querySelector("code");
  function select() { var r = document.createRange(); r.selectNodeContents(code);
    var s = getSelection(); s.removeAllRanges(); s.addRange(r); b.textContent = "Selected"; }
  if (navigator.clipboard) navigator.clipboard.writeText(code.textContent).then(
    function () { b.textContent = "Copied"; }, select); else select();
});
"""


HASH_NAMES = {"ahash": "aHash", "dhash": "dHash", "phash": "pHash", "whash": "wHash"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page_name(number: int) -> str:
    """File name of page ``number`` (1-based): index.html, page-2.html, ..."""
    return "index.html" if number == 1 else f"page-{number}.html"


def _command(label: str, command: str) -> str:
    return (f'<p>{esc(label)}</p><div class="cmd"><code>{esc(command)}</code>'
            f'<button type="button" class="copy" aria-label="copy the command">Copy</button></div>')


def _facts(m: MemberView) -> str:
    rows: list[tuple[str, str]] = []
    if m.width and m.height:
        rows.append(("resolution", f"{m.width} × {m.height} ({m.width * m.height / 1e6:.1f} MP)"))
    else:
        rows.append(("resolution", "unknown"))
    rows.append(("format", m.format or "unknown"))
    rows.append(("size", human_bytes(m.size_bytes)))
    rows.append(("taken", m.taken_at[:19].replace("T", " ") if m.taken_at else "unknown"))
    rows.append(("camera", m.camera or "unknown"))
    if m.role != "keeper":
        if m.kind == "exact":
            rows.append(("distance", "0 (byte-identical)"))
        else:
            per = " ".join(f"{HASH_NAMES.get(k, k)} {v}" for k, v in m.distances.items())
            left_out = [k for k in m.distances if m.linked_by and k not in m.linked_by]
            how = f" ({per}{'; not linked by ' + ', '.join(left_out) if left_out else ''})" if per else ""
            rows.append(("distance", f"{m.distance}{how}"))
        if m.action:
            rows.append(("suggested", m.action))
    return '<dl class="facts">' + "".join(
        f'<div><dt>{esc(k)}</dt><dd class="{esc(k)}">{esc(v)}</dd></div>' for k, v in rows) + "</dl>"


def _member(m: MemberView, group: GroupView, thumb: str | None, catalog: str) -> str:
    cls = "keeper" if m.role == "keeper" else ("exact" if m.kind == "exact" else "near")
    badge = "keeper" if m.role == "keeper" else m.relation_label
    if m.change:
        badge = f"{badge}: {m.change}"
    image = (f'<img src="{esc(thumb)}" alt="{esc("thumbnail of " + m.name)}" decoding="async">' if thumb
             else f'<div class="nothumb">no preview ({esc(m.format or "unreadable")})</div>')
    decide = ""
    if m.role != "keeper":
        decide = ('<div class="decide">'
                  + _command("Not a duplicate of the keeper:",
                             not_duplicate_command(group.keeper.path, m.path, catalog))
                  + _command("Keep this one instead:", keeper_command(m.path, catalog)) + "</div>")
    return (f'<figure class="member {cls}" data-path="{esc(m.path)}" data-relation="{esc(m.relation)}">'
            f'<div class="thumb">{image}</div><figcaption>'
            f'<span class="badge {cls}">{esc(badge)}</span>'
            f'<div class="name">{esc(m.name)}</div>{_facts(m)}'
            f'<div class="path">{esc(m.path)}</div>{decide}</figcaption></figure>')


def group_card(group: GroupView, thumbs: Mapping[str, str | None], catalog: str) -> str:
    """One ``<article>``: keeper and why, then exact copies, then near copies."""
    def section(title: str, members: Sequence[MemberView], cls: str) -> str:
        if not members:
            return ""
        inner = "".join(_member(m, group, thumbs.get(m.path), catalog) for m in members)
        return f'<section class="{cls}"><h3>{esc(title)}</h3><div class="members">{inner}</div></section>'

    kind = "exact" if group.similarity_type == "exact" else "near"
    conf = f" · confidence {group.confidence}" if group.confidence is not None else ""
    n = len(group.members)
    return (
        f'<article class="group" id="g-{esc(group.id)}" data-group-id="{esc(group.id)}" '
        f'data-savable="{group.savable_bytes}">'
        f'<header><h2><a href="#g-{esc(group.id)}">#{group.rank}</a> · {n} photos</h2>'
        f'<span class="saves">saves {esc(human_bytes(group.savable_bytes))}</span>'
        f'<span class="badge {kind}">{"exact copies" if kind == "exact" else "near copies"}</span>'
        f'<span class="muted">group {esc(group.id)}{esc(conf)}</span></header>'
        f'<p class="reason">Keep <strong>{esc(group.keeper.name)}</strong>, because: {esc(group.reason)}</p>'
        '<div class="sections">'
        + section("Keeper", [group.keeper], "keeper")
        + section("Exact copies (byte-identical)", group.exact, "exact")
        + section("Near copies", group.near, "near")
        + "</div></article>")


def pager(number: int, pages: int) -> str:
    """Links to the first, previous, nearby, next and last pages."""
    if pages <= 1:
        return ""
    parts: list[str] = []

    def link(n: int, text: str, rel: str = "") -> None:
        rel_attr = f' rel="{rel}"' if rel else ""
        parts.append(f'<a href="{page_name(n)}"{rel_attr}>{esc(text)}</a>')

    if number > 1:
        link(1, "« first")
        link(number - 1, "‹ prev", "prev")
    for n in range(max(1, number - 3), min(pages, number + 3) + 1):
        if n == number:
            parts.append(f'<span class="here" aria-current="page">{n}</span>')
        else:
            link(n, str(n))
    if number < pages:
        link(number + 1, "next ›", "next")
        link(pages, "last »")
    return f'<nav class="pager" aria-label="pages">{"".join(parts)}<span class="muted">of {pages}</span></nav>'


def render_page(cards: Sequence[str], number: int, pages: int, first: int, sums: Mapping[str, int],
                catalog: str, made_at: datetime) -> str:
    """A whole page: header with the totals, pager, cards, pager."""
    total = sums["groups"]
    last = first + len(cards) - 1
    shown = f"groups {first}–{last} of {total}" if cards else "no duplicate groups"
    head = (f'<p class="totals"><strong>{esc(human_bytes(sums["savable_bytes"]))}</strong> could be saved '
            f'in {total} groups: {sums["exact"]} exact copies ({esc(human_bytes(sums["exact_bytes"]))}) and '
            f'{sums["near"]} near copies.</p>')
    nav = pager(number, pages)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>Duplicate review — page {number} of {pages}</title><style>{CSS}</style></head>'
        f'<body><div class="wrap"><header class="top"><h1>Duplicate review</h1>{head}'
        f'<p class="muted">Catalog {esc(catalog)} · made {esc(made_at.strftime("%Y-%m-%d %H:%M"))} · '
        f'page {number} of {pages}, {esc(shown)}, most space to save first.</p>'
        '<p class="hint">Each group keeps one photo (green). To change what the tool decided, copy a '
        'command under a photo into a terminal, then run <code style="display:inline">lumina-dedup review'
        '</code> again. Nothing here changes a file.</p>'
        f'{nav}</header><main>{"".join(cards)}</main>{nav}'
        '<footer>Made by lumina-dedup review. Thumbnails are embedded; this page needs no network.</footer>'
        f'</div><script>{SCRIPT}</script></body></html>\n')
