"""Settings: the one GPU switch, for hashing and the index search together.

A section of :class:`lumina_plugin.config.Config` (its TOML table is ``[gpu]``); the flags
``--gpu``/``--no-gpu`` of the commands that hash or search set ``use``.

    [gpu]
    use = "auto"     # "auto" | "on" | "off"
    device = 0
    devices = ""     # hashing on several GPUs: "all", or "0,1" ("0,0": two process groups on device 0)

Two older keys still narrow the switch for one part: ``[hashing] gpu`` (hashing only) and
``[index] backend`` (one named search backend). ``use = "off"`` wins over both: nothing
runs on the GPU. The rules are here, once (:meth:`GpuSettings.hashing_mode`,
:meth:`GpuSettings.index_backend`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ConfigError

#: The values of ``[gpu] use`` and of the older ``[hashing] gpu``.
GPU_MODES = ("auto", "on", "off")
#: ``[gpu] devices`` / ``--gpus`` value meaning every visible device.
ALL_DEVICES = "all"
#: Most entries ``[gpu] devices`` may list (each starts ``[hashing] gpu_processes`` processes).
MAX_GROUPS = 16
#: What an index backend becomes when the GPU is switched off ("cpu": the faster CPU join).
_CPU_TWIN = {"auto": "cpu", "gpu": "cpu", "faiss-gpu": "faiss"}


@dataclass(frozen=True)
class GpuSettings:
    #: "auto": use a GPU that passes its self-checks, quietly do without when there is no
    #: CuPy or no device, one warning when one is there but fails; "on": the same, but one
    #: warning whenever it cannot be used; "off": never touch the GPU (not even to look).
    use: str = "auto"
    #: CUDA device for hashing and the index search (``[index] gpu_device``, when not 0,
    #: still names the index's).
    device: int = 0
    #: Devices whose JPEG engines hash, one group of GPU processes (``[hashing]
    #: gpu_processes`` each) per entry: "" = ``device`` alone, "all" = every visible device,
    #: or a comma list such as "0,1". A device named twice gets two groups (on a one-GPU
    #: machine "0,0" runs the several-GPU code path). The index search keeps ``device``.
    devices: str = ""

    def __post_init__(self) -> None:
        if self.use not in GPU_MODES:
            raise ConfigError(f"gpu.use must be one of {', '.join(GPU_MODES)}, got {self.use!r}")
        if not isinstance(self.device, int) or isinstance(self.device, bool) or self.device < 0:
            raise ConfigError(f"gpu.device must be a whole number >= 0, got {self.device!r}")
        try:
            parse_devices(self.devices)
        except ValueError as exc:
            raise ConfigError(f"gpu.devices: {exc}") from None

    def hashing_devices(self, visible: int) -> tuple[int, ...]:
        """The CUDA device of each hashing process group, given ``visible`` devices: every
        one for "all" (``device`` when none is visible, so the GPU checks say why), else
        the list as written (a device past ``visible`` is kept: starting there fails and is
        reported), ``(device,)`` when ``devices`` is empty."""
        parsed = parse_devices(self.devices)
        if isinstance(parsed, str):  # "all"
            return tuple(range(visible)) or (self.device,)
        return parsed or (self.device,)

    def hashing_mode(self, hashing_gpu: str = "auto") -> str:
        """How hashing uses the GPU ("auto", "on" or "off"), given ``[hashing] gpu``: "off"
        when either says "off", else "on" when either says "on", else "auto"."""
        modes = (self.use, hashing_gpu)
        return "off" if "off" in modes else "on" if "on" in modes else "auto"

    def index_backend(self, backend: str = "auto") -> str:
        """The search backend asked for, given ``[index] backend``: switched off, the GPU
        backends become their CPU twins ("auto" and "gpu" -> "cpu", "faiss-gpu" -> "faiss");
        "on" turns "auto" into "gpu" (which warns and takes the CPU when it cannot be
        used); a backend named in ``[index]`` is otherwise kept."""
        if self.use == "off":
            return _CPU_TWIN.get(backend, backend)
        if self.use == "on" and backend == "auto":
            return "gpu"
        return backend


def parse_devices(text: str) -> tuple[int, ...] | str:
    """``[gpu] devices`` / ``--gpus``: "all" (returned as :data:`ALL_DEVICES`), a comma list of
    CUDA device numbers ("0,1", "0,0"; returned as a tuple), or "" (an empty tuple: the one
    ``device``). Raises ValueError with a one-line reason for anything else."""
    if not isinstance(text, str):
        raise ValueError(f'expected "all" or device numbers such as "0,1", got {text!r}')
    cleaned = text.strip().lower()
    if cleaned == ALL_DEVICES:
        return ALL_DEVICES
    if not cleaned:
        return ()
    out = []
    for part in cleaned.split(","):
        part = part.strip()
        if not part.isdigit() or not part.isascii():
            raise ValueError(f'expected "all" or device numbers such as "0,1", got {text!r}')
        out.append(int(part))
    if len(out) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS} devices (process groups), got {len(out)} in {text!r}")
    return tuple(out)
