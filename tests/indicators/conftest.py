import pytest

from boucle.storage.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "x.db")
    yield s
    s.close()
