"""lumina-plugin: finds duplicate photos for the Lumina catalog (and on its own, as ``lumina-dedup``)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Read from the installed metadata when asked: importlib.metadata costs a third of
    # ``lumina-dedup --help``, which must answer at once.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("lumina-plugin")
        except PackageNotFoundError:  # running from a checkout that was not installed
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
