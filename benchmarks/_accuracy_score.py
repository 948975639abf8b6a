"""Scoring for ``accuracy.py``: which predicted pairs are right, per edit kind and negative kind,
and the markdown table. Kept apart so the rules (the part people argue about) sit in one
short file next to the corpus's ``truth.json``, whose ``rules`` field states them in words.

A *pair* is an unordered pair of corpus files (paths relative to the corpus). Each predicted
pair gets one verdict (``judge``): ``true``, ``false`` (charged to a negative kind, or to
``cross_source``) or ``ignore`` (not scored). Recall per copy kind counts the (original, copy)
pairs found; overall recall also counts copy-copy pairs of one source.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

Pair = frozenset[str]
BUCKETS = ("hard", "colour", "simple")


class Judge:
    """The verdict on any pair of corpus files, from truth.json."""

    def __init__(self, truth: dict[str, Any]) -> None:
        self.files: dict[str, dict[str, Any]] = truth["files"]
        self.kinds: dict[str, dict[str, Any]] = truth["kinds"]
        self.listed = {frozenset(n["files"]): n["kind"] for n in truth["negative_pairs"]}
        self.related = {frozenset(r["sources"]): r["kind"] for r in truth.get("related_sources", [])}

    def __call__(self, a: str, b: str) -> tuple[str, str | None]:
        """("true", None), ("false", the negative kind charged) or ("ignore", None)."""
        listed = self.listed.get(frozenset((a, b)))
        if listed:
            return "false", listed
        fa, fb = self.files[a], self.files[b]
        if fa["source"] != fb["source"]:
            return "false", self.related.get(frozenset((fa["source"], fb["source"])), "cross_source")
        negatives = [f for f in (fa, fb) if f["role"] == "negative"]
        if not negatives:
            return "true", None
        if len(negatives) == 2 or self.kinds[negatives[0]["kind"]]["vs_own_source"] == "ignore":
            return "ignore", None
        return "false", negatives[0]["kind"]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def score(truth: dict[str, Any], pairs: set[Pair]) -> dict[str, Any]:
    """Precision, recall per copy kind and bucket, false pairs per negative kind."""
    judge = Judge(truth)
    files = truth["files"]
    original = {f["source"]: path for path, f in files.items() if f["role"] == "original"}
    # recall: (original, copy) pairs per kind
    per_kind: dict[str, dict[str, Any]] = {}
    for path, f in files.items():
        if f["role"] != "copy":
            continue
        row = per_kind.setdefault(f["kind"], {"pairs": 0, "found": 0, "true": 0, "false": 0})
        row["pairs"] += 1
        row["found"] += frozenset((original[f["source"]], path)) in pairs
    # precision: every predicted pair, charged to the copy kinds it involves
    verdicts: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    false_examples: list[dict[str, Any]] = []
    for pair in pairs:
        a, b = sorted(pair)
        verdict, kind = judge(a, b)
        verdicts[verdict] += 1
        if verdict == "ignore":
            continue
        if verdict == "false":
            charged[kind or "?"] += 1
            if len(false_examples) < 50:
                false_examples.append({"files": [a, b], "charged_to": kind})
        for f in {a, b}:
            if files[f]["role"] == "copy":
                per_kind[files[f]["kind"]][verdict] += 1
    for row in per_kind.values():
        row["recall"] = _ratio(row["found"], row["pairs"])
        row["precision"] = _ratio(row["true"], row["true"] + row["false"])
    buckets: dict[str, dict[str, Any]] = {}
    for bucket in (*BUCKETS, "all copies"):
        rows = [r for k, r in per_kind.items() if bucket == "all copies" or truth["kinds"][k]["bucket"] == bucket]
        n, found = sum(r["pairs"] for r in rows), sum(r["found"] for r in rows)
        t, f = sum(r["true"] for r in rows), sum(r["false"] for r in rows)
        buckets[bucket] = {"pairs": n, "found": found, "recall": _ratio(found, n), "true": t, "false": f,
                           "precision": _ratio(t, t + f)}
    positives: Counter[str] = Counter(f["source"] for f in files.values() if f["role"] in ("original", "copy"))
    n_positive = sum(n * (n - 1) // 2 for n in positives.values())
    negatives: dict[str, dict[str, Any]] = {}
    for neg in truth["negative_pairs"]:
        row = negatives.setdefault(neg["kind"], {"listed": 0, "joined": 0})
        row["listed"] += 1
        row["joined"] += frozenset(neg["files"]) in pairs
    for kind, row in negatives.items():
        row["false_pairs"] = charged.get(kind, 0)
    negatives["cross_source"] = {"listed": None, "joined": None, "false_pairs": charged.get("cross_source", 0)}
    return {
        "predicted_pairs": len(pairs), "true_pairs": verdicts["true"], "false_pairs": verdicts["false"],
        "ignored_pairs": verdicts["ignore"], "precision": _ratio(verdicts["true"], verdicts["true"] + verdicts["false"]),
        "positive_pairs": n_positive, "recall_all_pairs": _ratio(verdicts["true"], n_positive),
        "recall": buckets["all copies"]["recall"], "buckets": buckets, "kinds": per_kind, "negatives": negatives,
        "false_examples": false_examples,
    }


def group_pairs(groups: list[list[str]]) -> set[Pair]:
    """Every pair of files that share a group."""
    return {frozenset(p) for g in groups for p in combinations(sorted(set(g)), 2)}


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(truth: dict[str, Any], results: dict[str, dict[str, Any]], header: str = "") -> str:
    """Three tables: summary (P/R per bucket), recall per copy kind, false pairs per negative kind.
    ``results``: method label -> {"score": score(...), "seconds": float} or {"skipped": reason}."""
    ran = {m: r for m, r in results.items() if "score" in r}
    names = list(ran)
    out = [header] if header else []
    for m, r in results.items():
        if "skipped" in r:
            out.append(f"- {m}: not run ({r['skipped']})")
    out += ["", "| | pairs | " + " | ".join(f"{m} P | {m} R" for m in names) + " |",
            "|---|---:|" + "---:|---:|" * len(names)]
    first = ran[names[0]]["score"] if names else None
    for bucket in (*BUCKETS, "all copies"):
        cells = " | ".join(f"{_f(ran[m]['score']['buckets'][bucket]['precision'])} | "
                           f"{_f(ran[m]['score']['buckets'][bucket]['recall'])}" for m in names)
        out.append(f"| {bucket} | {first['buckets'][bucket]['pairs'] if first else '-'} | {cells} |")
    cells = " | ".join(f"{_f(ran[m]['score']['precision'])} | {_f(ran[m]['score']['recall_all_pairs'])}" for m in names)
    out.append(f"| every pair (R incl. copy-copy) | {first['positive_pairs'] if first else '-'} | {cells} |")
    out.append("| predicted / false pairs | | " + " | ".join(
        f"{ran[m]['score']['predicted_pairs']} | {ran[m]['score']['false_pairs']}" for m in names) + " |")
    out.append("| seconds | | " + "".join(f"{ran[m]['seconds']:.1f} | | " for m in names).rstrip())
    out += ["", "Recall of (original, copy) pairs per edit kind:", "",
            "| kind | group | pairs | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    for kind, info in truth["kinds"].items():
        if info["role"] != "copy" or not first or kind not in first["kinds"]:
            continue
        cells = " | ".join(_f(ran[m]["score"]["kinds"][kind]["recall"]) for m in names)
        out.append(f"| {kind} | {info['group']} | {first['kinds'][kind]['pairs']} | {cells} |")
    out += ["", "Negatives: listed pairs joined / all false pairs charged to the kind:", "",
            "| kind | listed | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for kind in (*[k for k, v in truth["kinds"].items() if v["role"] == "negative"], "cross_source"):
        if not first or kind not in first["negatives"]:
            continue
        row = first["negatives"][kind]
        cells = " | ".join(
            (f"{ran[m]['score']['negatives'][kind]['joined']}/" if row["listed"] is not None else "")
            + str(ran[m]["score"]["negatives"][kind]["false_pairs"]) for m in names)
        out.append(f"| {kind} | {row['listed'] if row['listed'] is not None else '-'} | {cells} |")
    return "\n".join(out) + "\n"
