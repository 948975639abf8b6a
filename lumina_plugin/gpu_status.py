"""Whether a GPU can be used, and if not, why not: the one place that looks for CuPy.

Hashing (:mod:`lumina_plugin.ingest`) and the index search (:mod:`lumina_plugin.index`) each
run a self-check of their own kernels before trusting a GPU, but both first ask here whether
CuPy imports and sees a device (:func:`cupy_problem`, :func:`cupy_module`), and both say why
a GPU is not used with a :class:`GpuProblem`: callers decide what to do (stay quiet, warn) by
its :class:`Why`, never by the wording of a message.

Imports nothing of the project but :mod:`lumina_plugin.extras` (which imports nothing), so
every package may import it; importing it never imports CuPy (the first call does, once per
process). CuPy comes with the optional ``gpu`` part: :attr:`Why.NO_CUPY` says what to install.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

from .extras import install_hint

__all__ = ["GpuProblem", "GpuUnavailable", "Why", "cupy_module", "cupy_problem", "first_line", "require_cupy"]


class Why(enum.Enum):
    """Why no GPU is used. The value is the reason in words."""

    SWITCHED_OFF = "the GPU is switched off"
    NO_CUPY = f"CuPy is not installed (the optional 'gpu' part: {install_hint('gpu')})"
    NO_DEVICE = "no CUDA device is visible"
    NO_NVIMGCODEC = "nvImageCodec is not installed (pip install nvidia-nvimgcodec-cu12)"
    SELF_CHECK = "the GPU's self-check failed"
    FAILED = "the GPU failed"

    @property
    def absent(self) -> bool:
        """Nothing to use (switched off, no CuPy, no device), as opposed to a GPU that is
        there but broken: "auto" does without it quietly."""
        return self in (Why.SWITCHED_OFF, Why.NO_CUPY, Why.NO_DEVICE)


@dataclass(frozen=True)
class GpuProblem:
    """Why no GPU is used: the kind (:attr:`why`, to decide on) and what was seen (:attr:`detail`,
    to show). ``str()`` is one line. Picklable: the GPU process sends it to the main process."""

    why: Why
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.why.value}: {self.detail}" if self.detail else self.why.value

    @classmethod
    def of(cls, why: Why, exc: BaseException) -> GpuProblem:
        """``why``, with the first line of ``exc`` (after its type's name) as the detail."""
        return cls(why, first_line(exc, with_type=True))


class GpuUnavailable(RuntimeError):
    """Raised where a GPU is needed and cannot be used; :attr:`problem` says why."""

    def __init__(self, problem: GpuProblem) -> None:
        super().__init__(problem)  # (args = (problem,): str() is the problem's line, and it pickles)
        self.problem = problem


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The exception's first line of text (after its type's name when ``with_type``), or
    only its type's name when it has no text: CUDA and driver errors often span many
    lines, and ``str()`` of some is empty. What a warning or a FileError has room for."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return f"{type(exc).__name__}: {line}" if with_type else line


@functools.cache
def cupy_problem() -> GpuProblem | None:
    """None when CuPy imports and sees at least one CUDA device; else why not (:attr:`Why.NO_CUPY`
    or :attr:`Why.NO_DEVICE`). Never raises; asked once per process."""
    try:
        import cupy
    except ImportError:
        return GpuProblem(Why.NO_CUPY)
    except Exception as exc:  # a CuPy that cannot load its CUDA libraries
        return GpuProblem(Why.NO_CUPY, first_line(exc))
    try:
        devices = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # no driver, no device: CuPy raises its CUDA runtime error
        return GpuProblem(Why.NO_DEVICE, first_line(exc))
    return None if devices > 0 else GpuProblem(Why.NO_DEVICE)


@functools.cache
def device_count() -> int:
    """CUDA devices CuPy sees (0 without CuPy or a device); asked once per process, for
    ``[gpu] devices = "all"``."""
    cp = cupy_module()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # (cupy_problem saw them a moment ago)
        return 0


def cupy_module() -> Any | None:
    """The ``cupy`` module when :func:`cupy_problem` finds none, else None (never raises)."""
    if cupy_problem() is not None:
        return None
    import cupy

    return cupy


def require_cupy() -> Any:
    """The ``cupy`` module (as :func:`cupy_module` gives it); raises :class:`GpuUnavailable`
    when it cannot be used."""
    cp = cupy_module()
    if cp is None:
        raise GpuUnavailable(cupy_problem() or GpuProblem(Why.NO_CUPY))
    return cp
