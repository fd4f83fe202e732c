"""Files that hold readings, dead-letter payloads or keys are their owner's only.

Created 0600 (folders 0700) whatever the umask lets through, so that other local users
cannot read the store or the spool. SQLite gives a database's `-wal` and `-shm` files
the mode of the database file, so creating that one right is enough. A file or folder
that already exists keeps its mode: `chmod` it yourself (docs/operations.md).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: str | os.PathLike[str]) -> Path:
    """`path` as a folder, created 0700 if missing (its missing parents with default modes)."""
    folder = Path(path)
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
    return folder


def create_private_file(path: str | os.PathLike[str]) -> Path:
    """Make sure `path` exists: created empty and 0600 if missing, in a 0700 folder if that is missing too."""
    file = Path(path)
    private_folder(file.parent)
    os.close(os.open(file, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    return file
