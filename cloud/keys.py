"""`boucle key`: make an API key and print the registry entry that grants it."""

from __future__ import annotations

import argparse
import json
import re

from boucle.cli import UserError
from boucle.registry import ID, ApiKey, hash_key
from cloud.security import new_key

ID_RULE = "2 to 48 characters among a-z, 0-9, '-' and '_', starting with a letter or digit"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a name for the key, e.g. ecully-energy-officer")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--admin", action="store_true", help="sees every territory and site")
    scope.add_argument("--territory", action="append", help="territory id it may see (repeatable)")
    scope.add_argument("--site", action="append", help="site id it may see (repeatable)")


def checked_entry(key_id: str, key: str, admin: bool = False, territories: list[str] | None = None,
                  sites: list[str] | None = None) -> ApiKey:
    """The registry entry for `key`; UserError naming an id that is not a registry id.

    Every id must match `boucle.registry.ID`, so a name cannot smuggle TOML
    (`intern"\\nadmin = true`) into the entry someone pastes into the registry.
    """
    for what, values in (("key name", [key_id]), ("territory", territories or []), ("site", sites or [])):
        for value in values:
            if not re.fullmatch(ID, value):
                raise UserError(f"{what} {value!r} is not a registry id: use {ID_RULE}")
    return ApiKey(id=key_id, sha256=hash_key(key), admin=admin, territories=tuple(territories or ()),
                  sites=tuple(sites or ()))


def entry_toml(entry: ApiKey) -> str:
    """The `[[api_keys]]` table of an entry; strings as TOML basic strings (JSON-escaped)."""
    def text(value: str) -> str:
        return json.dumps(value)  # ASCII-only, every quote and control character escaped

    lines = ["[[api_keys]]", f"id = {text(entry.id)}", f"sha256 = {text(entry.sha256)}"]
    if entry.admin:
        lines.append("admin = true")
    if entry.territories:
        lines.append("territories = [" + ", ".join(map(text, entry.territories)) + "]")
    if entry.sites:
        lines.append("sites = [" + ", ".join(map(text, entry.sites)) + "]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    key = new_key()
    entry = checked_entry(args.id, key, args.admin, args.territory, args.site)
    print("# Append to the registry file; the services pick it up without a restart.")
    print(entry_toml(entry))
    print(f"\n# The key itself (shown once, stored nowhere): {key}")
    return 0
