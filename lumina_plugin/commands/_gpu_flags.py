"""``--gpu/--no-gpu/--gpu-batch-size N``: the hashing flags of the commands that hash.

A command adds them with :func:`add_gpu_flags`; :func:`apply_gpu_flags` lays them over
the configuration (they win over the ``[hashing]`` table, as every flag does). Commands
without the flags are untouched.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import Config


def add_gpu_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hashing")
    gpu = group.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", dest="gpu", action="store_const", const="on", default=None,
                     help="decode and hash on the GPU (if it cannot be used: one warning, then the CPU)")
    gpu.add_argument("--no-gpu", dest="gpu", action="store_const", const="off",
                     help="hash on the CPU only (default: the GPU when one passes its self-check)")
    group.add_argument("--gpu-batch-size", type=_positive, default=None, metavar="N",
                       help="photos per GPU decode batch (default 128, lowered to fit free GPU memory)")


def apply_gpu_flags(args: argparse.Namespace, config: Config) -> Config:
    """``config`` with the flags of ``args`` applied (unchanged when none were given)."""
    changes: dict[str, object] = {}
    if getattr(args, "gpu", None) is not None:
        changes["gpu"] = args.gpu
    if getattr(args, "gpu_batch_size", None) is not None:
        changes["gpu_batch_size"] = args.gpu_batch_size
    if not changes:
        return config
    return config.replace(hashing=dataclasses.replace(config.hashing, **changes))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
