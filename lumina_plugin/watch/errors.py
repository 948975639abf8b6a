"""The watcher's own errors: each message is one line that names the folder or file."""

from __future__ import annotations


class WatchError(Exception):
    """The watcher cannot start or go on (a folder that does not exist, a second watcher
    on the same catalog, a queue file that is not ours)."""
