"""Perceptual hashes: bit layout and versions (codes), the NumPy path (cpu)."""

from .codes import ALGORITHM_VERSION, ALGORITHMS, code_to_hex, hex_to_code

__all__ = ["ALGORITHMS", "ALGORITHM_VERSION", "code_to_hex", "hex_to_code"]
