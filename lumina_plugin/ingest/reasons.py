"""Why something failed, in the one line a warning or a FileError has room for."""

from __future__ import annotations


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The exception's first line of text (after its type's name when ``with_type``), or
    only its type's name when it has no text: CUDA and driver errors often span many
    lines, and ``str()`` of some is empty."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return f"{type(exc).__name__}: {line}" if with_type else line
