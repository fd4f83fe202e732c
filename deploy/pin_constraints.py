"""Write deploy/constraints.txt: the exact versions of Boucle's runtime dependencies.

The Docker image installs the project with these pins (`pip install -c constraints.txt .`),
so an image built next month runs the versions the test suite passed with. Run it from
the project's virtualenv after a dependency change:

    .venv/bin/python deploy/pin_constraints.py
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).with_name("constraints.txt")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """The runtime requirements declared in pyproject.toml (extras left out)."""
    return tomllib.loads(pyproject.read_text("utf-8"))["project"]["dependencies"]


def runtime_requirements(requirements: list[str]) -> dict[str, str]:
    """Installed versions of `requirements` and of everything they need, recursively."""
    env = default_environment()
    pinned: dict[str, str] = {}
    todo: list[tuple[list[str], frozenset[str]]] = [(requirements, frozenset())]
    while todo:
        texts, extras = todo.pop()
        for text in texts:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in extras | {""}):
                continue
            key = canonicalize_name(req.name)
            if key in pinned:
                continue
            pinned[key] = metadata.version(req.name)
            todo.append((metadata.requires(req.name) or [], frozenset(req.extras)))
    return dict(sorted(pinned.items()))


def render(pins: dict[str, str]) -> str:
    header = ("# Exact runtime dependency versions for the Docker image (deploy/Dockerfile).\n"
              "# Made by deploy/pin_constraints.py from a tested virtualenv; do not edit.\n")
    return header + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main() -> int:
    try:
        pins = runtime_requirements(project_dependencies())
    except metadata.PackageNotFoundError as exc:
        print(f"pin_constraints: {exc.name} is not installed here; run it with the project's "
              f"virtualenv after `pip install -e '.[test]'`", file=sys.stderr)
        return 2
    CONSTRAINTS.write_text(render(pins))
    print(f"pin_constraints: {len(pins)} packages pinned in {CONSTRAINTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
