"""benchmarks/cold_files.py's ``--threads``: one count or several, and a value that is not a
list of counts refused with a message naming it."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cold_files  # noqa: E402


def test_one_count_or_several() -> None:
    assert cold_files.thread_counts("16") == [16]
    assert cold_files.thread_counts("16,32") == [16, 32]


@pytest.mark.parametrize("text", ["", "16,", "x", "16,x", "0", "16,-1"])
def test_a_bad_count_is_refused_by_name(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
        cold_files.thread_counts(text)

