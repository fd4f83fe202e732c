"""All-or-nothing update of several text files (registry, password file, ACL).

Each new content is first written to a temporary file beside its target and fsynced;
then the targets are swapped in with os.replace (atomic on one filesystem). If a swap
fails, the files already swapped get their previous bytes back, so a failure at any
point leaves every file as it was.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class TransactionError(Exception):
    """The files could not be updated; they were left (or put back) as they were."""


@dataclass
class FileChange:
    path: Path
    new_text: str
    old_bytes: bytes | None = None  # None: the file did not exist


@dataclass
class FileTransaction:
    """Stage text for several files, then commit them together or not at all."""

    changes: list[FileChange] = field(default_factory=list)
    committed: bool = False

    def stage(self, path: str | os.PathLike[str], new_text: str) -> None:
        path = Path(path)
        old = path.read_bytes() if path.exists() else None
        self.changes.append(FileChange(path, new_text, old))

    def commit(self) -> None:
        """Swap every staged file in; on any failure put the swapped ones back and raise."""
        temps: list[Path] = []
        done: list[FileChange] = []
        try:
            for change in self.changes:
                temps.append(_write_temp(change.path, change.new_text.encode("utf-8")))
            for change, temp in zip(self.changes, temps):
                _check_unchanged(change)
                os.replace(temp, change.path)
                done.append(change)
        except OSError as exc:
            self._restore(done)
            raise TransactionError(f"could not update {exc.filename or 'a file'}: {exc.strerror or exc}; "
                                   "nothing was changed") from exc
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        self.committed = True

    def rollback(self) -> list[Path]:
        """Undo a commit; returns the files left alone because someone changed them since."""
        if not self.committed:
            return []
        skipped = []
        mine = []
        for change in self.changes:
            current = change.path.read_bytes() if change.path.exists() else None
            if current == change.new_text.encode("utf-8"):
                mine.append(change)
            else:
                skipped.append(change.path)
        self._restore(mine)
        self.committed = False
        return skipped

    @staticmethod
    def _restore(changes: list[FileChange]) -> None:
        for change in reversed(changes):
            if change.old_bytes is None:
                change.path.unlink(missing_ok=True)
            else:
                temp = _write_temp(change.path, change.old_bytes)
                os.replace(temp, change.path)


def _check_unchanged(change: FileChange) -> None:
    """Refuse to overwrite a file someone edited between staging and commit."""
    current = change.path.read_bytes() if change.path.exists() else None
    if _digest(current) != _digest(change.old_bytes):
        raise OSError(0, "it was changed by someone else meanwhile; run the command again",
                      str(change.path))


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _write_temp(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            # Keep the target's permissions: the broker's user must still read its files.
            os.chmod(name, target.stat().st_mode & 0o7777)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
