"""ReadingBuffer against a plain list, for random sequences of operations (CPython only:
hypothesis). Restarts keep what was synced; capacity drops the oldest and counts them."""

from __future__ import annotations

import tempfile

from boucle_fw.buffer import ReadingBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

OPS = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(1, 12)),
    st.tuples(st.just("drop"), st.integers(0, 15)),
    st.tuples(st.just("sync"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, capacity=st.integers(5, 40), ram=st.integers(2, 10), segment=st.integers(1, 8))
def test_buffer_matches_a_list(ops, capacity, ram, segment):
    with tempfile.TemporaryDirectory() as d:
        path = d + "/buf"
        b = ReadingBuffer(capacity, ram, segment, path)
        model: list[int] = []  # seqs, oldest first
        seq = 0
        for op, n in ops:
            before = b.dropped
            if op == "push":
                for _ in range(n):
                    b.push({"seq": seq, "ts": seq})
                    model.append(seq)
                    seq += 1
            elif op == "drop":
                b.drop(n)
                model = model[n:]
            elif op == "sync":
                b.sync()
            else:  # power cut after this point: what was only in RAM is gone
                ram_only = len(b.ram_readings())
                model = model[: len(model) - ram_only]
                b = ReadingBuffer(capacity, ram, segment, path)
                before = 0
            got = [r["seq"] for r in b.peek(10_000)]
            assert b.depth == len(got) <= capacity
            # only the bound loses readings: the oldest, each one counted
            lost = len(model) - len(got)
            assert lost == b.dropped - before
            assert got == model[lost:]
            model = got
