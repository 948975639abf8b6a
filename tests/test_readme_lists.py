"""The README's lists agree with the code (issue 18, item 12): the hooks a host can call and
the commands a user can type, read from the hookspecs and from the real argument parser, so a
new hook or command cannot be left out of the README again.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import lumina_hooks.specs as specs

from lumina_plugin.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def commands_block() -> list[str]:
    """The indented ``lumina-dedup ...`` lines of the README's "## Commands" section."""
    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    lumina-dedup ")]


def test_readme_lists_every_hook() -> None:
    hooks = {name for name in dir(specs) if name.startswith("lumina_") and callable(getattr(specs, name))}
    assert "lumina_images_moved" in hooks and len(hooks) >= 8
    listed = re.split(r"the hookspecs\s+\(", README, maxsplit=1)[1].split(")", 1)[0]
    assert set(re.findall(r"`(lumina_\w+)`", listed)) == hooks


def test_readme_lists_every_command_and_every_lumina_action() -> None:
    lines = commands_block()
    commands = subcommands(build_parser())
    assert {line.split()[1] for line in lines} == set(commands)
    (lumina,) = [line for line in lines if line.split()[1] == "lumina"]
    actions = re.sub(r"\s+\(.*\)$", "", lumina.split(None, 2)[2])
    assert {a.strip() for a in actions.split("|")} == set(subcommands(commands["lumina"]))
    (decide,) = [line for line in lines if line.split()[1] == "decide"]
    assert {part.split()[0] for part in decide.split(None, 2)[2].split("|")} == set(subcommands(commands["decide"]))


def test_readme_commands_work_without_an_activated_venv() -> None:
    """Every command line to paste either runs ``.venv/bin/lumina-dedup``, or the README says
    once, before the list, to activate the environment."""
    try_it = README.split("## Try it", 1)[1].split("\n## ", 1)[0]
    pasted = [line.strip() for line in try_it.splitlines() if line.startswith("    ") and "lumina-dedup " in line]
    assert pasted and all(".venv/bin/lumina-dedup " in line for line in pasted)
    section = README.split("## Commands", 1)[1]
    assert section.index(". .venv/bin/activate") < section.index("    lumina-dedup ")
