"""The embedded store's batch insert (rows as one JSON array unpacked by SQLite) keeps every
value exactly as the parser produced it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from boucle.protocol import FIELDS, MEASUREMENT_FIELDS, field_bounds, row_values
from boucle.storage.sqlite import SQLiteStore

BOUNDS = field_bounds()


def value(name, decimals):
    low, high = BOUNDS[name]
    if decimals is None:
        return st.integers(int(low), int(high))
    wire = st.floats(low, high, allow_nan=False).map(lambda x: round(x, decimals))
    return wire | st.floats(low, high, allow_nan=False)  # any double a third party could send


rows = st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1),
                          st.fixed_dictionaries({}, optional={n: value(n, d) for n, d in FIELDS})),
                min_size=1, max_size=50)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_written_rows_read_back_exactly(tmp_path_factory, batch):
    store = SQLiteStore(tmp_path_factory.mktemp("rows") / "b.db")
    written = {}
    for seq, (boot, ts, values) in enumerate(batch):
        row = ("dev-\"q\\1", boot, seq, ts, *(values.get(f) for f in MEASUREMENT_FIELDS))
        written[(boot, seq)] = row
    assert store.write_rows(list(written.values()), received=1.5) == len(written)
    assert store.write_rows(list(written.values()), received=2.5) == 0  # a replay adds nothing
    stored = store.readings("dev-\"q\\1", 0, 2**31, MEASUREMENT_FIELDS)
    assert len(stored) == len(written)
    for r in stored:
        original = written[(r.boot, r.seq)]
        assert r.ts == original[3]
        present = {k: v for k, v in r.values.items() if v is not None}
        assert present == row_values(original)
        assert {k: type(v) for k, v in present.items()} == {k: type(v) for k, v in row_values(original).items()}
    assert store.last_seen(['dev-"q\\1'])['dev-"q\\1'][1] == 1.5  # the first write's receive time
    store.close()
