"""``--gpu/--no-gpu/--gpus all|0,1/--gpu-batch-size N``: the GPU flags of the commands that hash or search.

A command adds them with :func:`add_gpu_flags`; :func:`apply_gpu_flags` lays them over
the configuration (they win over the files, as every flag does), and :func:`gpu_overrides`
gives them as configuration tables, for a command whose engine is built elsewhere (the
watcher's plugin host). Commands without the flags are untouched.

``--gpu``/``--no-gpu`` set the one switch, ``[gpu] use``, which governs hashing and the index
search together; they also put ``[hashing] gpu`` (the older hashing-only key) back to
"auto", so a file's ``[hashing] gpu = "off"`` does not outvote ``--gpu``. An ``[index]
backend`` that names one backend stays, except that ``--no-gpu`` keeps it off the GPU
(settings/gpu.py has the rules). ``--gpus`` sets ``[gpu] devices``: the devices whose JPEG
engines hash, a group of GPU processes on each; a value that is neither "all" nor device
numbers is bad usage (one error line naming it, exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Config
from ..settings.gpu import ALL_DEVICES, parse_devices
from ._arg_types import positive_int


def gpu_devices(text: str) -> str:
    """``--gpus``: "all" or device numbers such as "0,1", written back in one spelling
    ("all", "0,1"); argparse reports a bad value as ``error: argument --gpus: ...``, exit 2."""
    try:
        parsed = parse_devices(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if parsed == ():
        raise argparse.ArgumentTypeError(f'expected "all" or device numbers such as "0,1", got {text!r}')
    return ALL_DEVICES if parsed == ALL_DEVICES else ",".join(str(d) for d in parsed)


def add_gpu_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--gpu``, ``--no-gpu``, ``--gpus`` and ``--gpu-batch-size N`` to ``parser``."""
    group = parser.add_argument_group("GPU")
    gpu = group.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", dest="gpu", action="store_const", const="on", default=None,
                     help="hash and search on the GPU (if it cannot be used: one warning, then the CPU)")
    gpu.add_argument("--no-gpu", dest="gpu", action="store_const", const="off",
                     help="hash and search on the CPU only, without looking for a GPU "
                          "(default: the GPU when one passes its self-checks)")
    group.add_argument("--gpus", type=gpu_devices, default=None, metavar="all|0,1",
                       help="hash on these CUDA devices, a group of GPU processes on each: "
                            '"all", or device numbers such as 0,1 (default: [gpu] device)')
    group.add_argument("--gpu-batch-size", type=positive_int, default=None, metavar="N",
                       help="photos per GPU decode batch (default: about 224 MB of files, 32-256 photos; "
                            "lowered to fit free GPU memory)")


def gpu_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The flags of ``args`` as configuration tables (``{"gpu": {...}, "hashing": {...}}``;
    empty when none were given, or the command has no such flags)."""
    out: dict[str, dict[str, Any]] = {}
    if getattr(args, "gpu", None) is not None:
        out["gpu"] = {"use": args.gpu}
        out["hashing"] = {"gpu": "auto"}
    if getattr(args, "gpus", None) is not None:
        out.setdefault("gpu", {})["devices"] = args.gpus
    if getattr(args, "gpu_batch_size", None) is not None:
        out.setdefault("hashing", {})["gpu_batch_size"] = args.gpu_batch_size
    return out


def apply_gpu_flags(args: argparse.Namespace, config: Config) -> Config:
    """``config`` with the flags of ``args`` applied (``config`` itself when none were given)."""
    overrides = gpu_overrides(args)
    return Config.from_mapping(overrides, config) if overrides else config


def merge_tables(base: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``base`` (a configuration mapping) with ``overrides`` laid over it, table by table."""
    out = dict(base)
    for key, table in overrides.items():
        below = out.get(key)
        out[key] = {**(below if isinstance(below, dict) else {}), **table}
    return out

