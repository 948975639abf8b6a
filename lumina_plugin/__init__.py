"""lumina-plugin: finds duplicate photos for the Lumina catalog (and on its own, as ``lumina-dedup``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lumina-plugin")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0"
