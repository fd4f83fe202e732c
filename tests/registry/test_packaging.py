"""`pip install .` (the Docker image) must ship every package and data file the code uses."""

import tomllib

from tests.conftest import REPO


def test_every_python_package_is_listed():
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    mapped = {name: REPO / path for name, path in conf["package-dir"].items()}
    found = set()
    for top in ("boucle", "gateway", "cloud", "simulator", "workshop", "bench"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(REPO).parts))
    for name, path in mapped.items():
        for init in path.rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(path).parts)))
    assert found - listed == set()
