"""Child process for the index crash tests: opens an index and does one write.

Usage: python tests/_index_writer.py INDEX_DIR add BATCH.npz | INDEX_DIR compact

The parent sets LUMINA_DEDUP_TEST_CRASH_AT so that the store SIGKILLs this process mid-write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lumina_plugin.index.store import HashIndex


def main(argv: list[str]) -> None:
    index = HashIndex.open(Path(argv[0]))
    if argv[1] == "add":
        batch = np.load(argv[2])
        index.add(batch["ids"], batch["codes"])
    elif argv[1] == "compact":
        index.compact()
    else:
        raise SystemExit(f"unknown operation {argv[1]!r}")
    index.close()


if __name__ == "__main__":
    main(sys.argv[1:])
