"""Value types for argparse that refuse what makes no sense, as bad usage (exit 2).

``--wait -5``, ``--per-band 0`` or ``--target 2`` used to be taken as given and either
ignored or turned into a run that cannot answer; argparse calls these with the text
and reports an ``ArgumentTypeError`` as ``error: argument --x: <message>``, exit 2.
Imports only argparse and math: the parser is built before anything heavy loads.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_float", "positive_int", "precision"]


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--per-band N``, ``--gpu-batch-size N``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """Seconds to wait: 0 or more (``inf``: wait as long as it takes); never NaN."""
    value = _float(text)
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return value


def precision(text: str) -> float:
    """A precision to reach: more than 0, at most 1 (0.95 is 95%)."""
    value = _float(text)
    if not 0 < value <= 1:  # (NaN fails both comparisons)
        raise argparse.ArgumentTypeError(f"must be a fraction above 0 and at most 1 (0.95 is 95%), got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
