"""Long fuzzing of the EXIF reader and decode path (not collected by pytest).

    python tests/fuzz_long.py --minutes 10            # hypothesis, many more examples
    python tests/fuzz_long.py --atheris -- -runs=100000   # coverage-guided, if atheris installs

Prints how many inputs ran; any exception other than PhotoError is a failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--atheris", action="store_true")
    args, rest = parser.parse_known_args()
    if args.atheris:
        import atheris
        with atheris.instrument_imports():  # coverage guidance inside our decode and EXIF code
            import exifread  # noqa: F401

            import lumina_plugin.decode.exif  # noqa: F401
    from test_fuzz import SEEDS, check_one, mutated  # noqa: E402

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.img"
        if args.atheris:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            for n, seed in enumerate(SEEDS):  # start from real photos, not from nothing
                (corpus / f"seed{n}").write_bytes(seed)

            def one(data: bytes) -> None:
                check_one(data, path)

            atheris.Setup([sys.argv[0], *[a for a in rest if a != "--"], str(corpus)], one)
            atheris.Fuzz()
            return 0
        from hypothesis import HealthCheck, given, settings

        count = 0
        deadline = time.monotonic() + args.minutes * 60

        @settings(max_examples=10**9, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=mutated())
        def run(data: bytes) -> None:
            nonlocal count
            if time.monotonic() > deadline:
                raise _Done
            check_one(data, path)
            count += 1

        try:
            run()
        except _Done:
            pass
        print(f"{count} inputs from {len(SEEDS)} seeds, no unexpected exception")
    return 0


class _Done(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
