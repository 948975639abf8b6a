"""The optional parts (pyproject's extras): which module belongs to which, and the one line
that says what to install when one is missing.

The base install hashes and groups JPEG, PNG, TIFF... in a SQLite catalog. Four parts are
optional: ``lumina`` (Lumina's PostgreSQL database, Redis and Celery), ``gpu`` (CuPy),
``raw`` (rawpy/LibRaw, for RAWs whose embedded preview is too small) and ``heif``
(pillow-heif). Code that needs one imports it late; when the import fails the user sees
:func:`missing_message` (the command line: one line, exit 1; a photo: that file's error),
never a ``ModuleNotFoundError`` traceback. This module is the one place that knows the
mapping, so the wording and the ``pip install`` line are the same everywhere.

Imports nothing (``--help`` stays light; every package may import it).
"""

from __future__ import annotations

__all__ = ["EXTRAS", "extra_of", "install_hint", "missing_extra_message", "missing_message", "needs"]

#: Top-level module -> (the extra that installs it, the package's name as users know it).
EXTRAS: dict[str, tuple[str, str]] = {
    "psycopg": ("lumina", "psycopg"),
    "psycopg_binary": ("lumina", "psycopg"),
    "celery": ("lumina", "celery"),
    "kombu": ("lumina", "kombu"),
    "redis": ("lumina", "redis"),
    "fastapi": ("lumina", "fastapi"),
    "httpx": ("lumina", "httpx"),
    "cupy": ("gpu", "CuPy"),
    "cupy_backends": ("gpu", "CuPy"),
    "rawpy": ("raw", "rawpy"),
    "pillow_heif": ("heif", "pillow-heif"),
}


def extra_of(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name: its top-level package counts), or
    None when no extra does (a base dependency, or a module of the project itself)."""
    if not module:
        return None
    found = EXTRAS.get(module.partition(".")[0])
    return found[0] if found else None


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'lumina-plugin[extra]'``."""
    return f"pip install 'lumina-plugin[{extra}]'"


def needs(module: str) -> str:
    """What a missing ``module`` of an extra means, to end a sentence whose subject is the thing
    that needs it: ``needs the optional 'raw' part (rawpy is not installed): pip install ...``."""
    top = module.partition(".")[0]
    extra, package = EXTRAS.get(top, (None, top))
    if extra is None:
        return f"needs {package}, which is not installed"
    return f"needs the optional '{extra}' part ({package} is not installed): {install_hint(extra)}"


def missing_message(module: str) -> str:
    """One line saying that ``module`` (a module of an extra) is missing and what to install:
    ``this needs the optional 'lumina' part (psycopg is not installed): pip install ...``."""
    return f"this {needs(module)}"


def missing_extra_message(exc: BaseException) -> str | None:
    """:func:`missing_message` for a ``ModuleNotFoundError`` of a module that an extra installs;
    None for any other exception (a base dependency missing is a broken install: its
    traceback is worth more than a line pointing at the wrong extra)."""
    if not isinstance(exc, ModuleNotFoundError) or extra_of(exc.name) is None:
        return None
    return missing_message(exc.name or "")
