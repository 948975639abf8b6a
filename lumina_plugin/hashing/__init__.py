"""Perceptual hashes: bit layout and versions (codes), the NumPy path (cpu)."""

from ..model import ALGORITHM_VERSION, ALGORITHMS
from .codes import code_to_hex, hex_to_code

__all__ = ["ALGORITHMS", "ALGORITHM_VERSION", "code_to_hex", "hex_to_code"]
