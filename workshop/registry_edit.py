"""Edit the registry TOML as text, so its comments and layout stay as people wrote them.

Every edit is checked by loading the result with `boucle.registry.load_registry` from a
temporary copy before anyone writes it to the real file.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from boucle.registry import Registry, RegistryError, load_registry

_TABLE_HEADER = re.compile(r"^\s*\[")
_ID_LINE = re.compile(r'^\s*id\s*=\s*"([^"]*)"\s*(#.*)?$')


class RegistryEditError(Exception):
    """The edit cannot be made (id taken, unknown site, result not a valid registry)."""


def toml_value(value: Any) -> str:
    """A scalar, list or flat table as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no TOML spelling here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def device_block(entry: dict[str, Any]) -> str:
    """A `[[devices]]` table for one device (None values left out)."""
    lines = ["[[devices]]"]
    lines += [f"{_key(k)} = {toml_value(v)}" for k, v in entry.items() if v is not None and v != {}]
    return "\n".join(lines) + "\n"


def _device_spans(text: str) -> dict[str, tuple[int, int]]:
    """device id → (first line, end line) of its `[[devices]]` table in the text."""
    lines = text.splitlines()
    spans: dict[str, tuple[int, int]] = {}
    n = 0
    while n < len(lines):
        if re.match(r"^\s*\[\[devices\]\]", lines[n]):
            start, end, device_id = n, n + 1, None
            while end < len(lines) and not _TABLE_HEADER.match(lines[end]):
                found = _ID_LINE.match(lines[end])
                if found:
                    device_id = found.group(1)
                end += 1
            # Comment and blank lines just before the next table belong to that table.
            while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1
            if device_id is not None:
                spans[device_id] = (start, end)
            n = end
        else:
            n += 1
    return spans


def check(text: str, where: Path | str = "registry.toml") -> Registry:
    """Load registry text as the services would; RegistryEditError if it is not valid."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(where).name
        copy.write_text(text, "utf-8")
        try:
            return load_registry(copy)
        except RegistryError as exc:
            raise RegistryEditError(str(exc).replace(str(copy), str(where))) from None


def with_device(text: str, entry: dict[str, Any], force: bool = False, where: Path | str = "registry.toml") -> str:
    """Registry text with a `[[devices]]` table for `entry` appended.

    A device with the same id is refused, or replaced in place when `force` is set.
    """
    current = check(text, where)
    device_id = entry["id"]
    if current.site(entry.get("site", "")) is None:
        sites = ", ".join(s.id for s in current.sites)
        raise RegistryEditError(f"site {entry.get('site')!r} is not in {where}; use one of: {sites}")
    if current.device(device_id) is not None:
        if not force:
            raise RegistryEditError(f"device {device_id!r} is already registered in {where}; "
                                    "pass --force to re-provision it (new password, registry entry replaced)")
        text = _without_device(text, device_id)
    block = device_block(entry)
    new_text = text.rstrip("\n") + "\n\n" + block
    check(new_text, where)
    return new_text


def _without_device(text: str, device_id: str) -> str:
    span = _device_spans(text).get(device_id)
    if span is None:
        raise RegistryEditError(f"device {device_id!r} is registered but its [[devices]] table was not found "
                                "(is it written as an inline array?); edit the file by hand")
    lines = text.splitlines()
    del lines[span[0]:span[1]]
    return "\n".join(lines) + "\n"


def with_calibration(text: str, device_id: str, calibration: dict[str, float],
                     where: Path | str = "registry.toml") -> str:
    """Registry text with the device's `calibration = {...}` set (merged with what is there)."""
    current = check(text, where)
    device = current.device(device_id)
    if device is None:
        raise RegistryEditError(f"device {device_id!r} is not in {where}")
    span = _device_spans(text).get(device_id)
    if span is None:
        raise RegistryEditError(f"the [[devices]] table of {device_id!r} was not found in {where}; edit it by hand")
    merged = {**device.calibration, **calibration}
    lines = text.splitlines()
    line = f"calibration = {toml_value(merged)}"
    for n in range(span[0] + 1, span[1]):
        if re.match(r"^\s*calibration\s*=", lines[n]):
            lines[n] = line
            break
    else:
        lines.insert(span[1], line)
    new_text = "\n".join(lines) + "\n"
    check(new_text, where)
    return new_text
