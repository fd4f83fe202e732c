"""`boucle key`: make an API key and print the registry entry that grants it."""

from __future__ import annotations

import argparse

from boucle.registry import hash_key
from cloud.security import new_key


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a name for the key, e.g. ecully-energy-officer")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--admin", action="store_true", help="sees every territory and site")
    scope.add_argument("--territory", action="append", help="territory id it may see (repeatable)")
    scope.add_argument("--site", action="append", help="site id it may see (repeatable)")


def run(args: argparse.Namespace) -> int:
    key = new_key()
    lines = ["[[api_keys]]", f'id = "{args.id}"', f'sha256 = "{hash_key(key)}"']
    if args.admin:
        lines.append("admin = true")
    if args.territory:
        lines.append("territories = [" + ", ".join(f'"{t}"' for t in args.territory) + "]")
    if args.site:
        lines.append("sites = [" + ", ".join(f'"{s}"' for s in args.site) + "]")
    print("# Append to the registry file; the services pick it up without a restart.")
    print("\n".join(lines))
    print(f"\n# The key itself (shown once, stored nowhere): {key}")
    return 0
