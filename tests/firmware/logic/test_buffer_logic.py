# Store-and-forward buffer: runs on CPython and on MicroPython.
import os

from boucle_fw.buffer import OsFiles, ReadingBuffer

try:
    from tests.firmware.logic.mpcompat import tmpdir
except ImportError:
    from mpcompat import tmpdir


class PowerCut(Exception):
    pass


class CuttingFiles(OsFiles):
    """Real files, but the power goes at write step number `cut_at` (0-based).

    Steps: creating a file, each write (cut halfway through its bytes), closing, renaming,
    removing. Counts steps when cut_at is None.
    """

    def __init__(self, cut_at=None):
        OsFiles.__init__(self)
        self.cut_at = cut_at
        self.steps = 0

    def step(self):
        if self.cut_at is not None and self.steps == self.cut_at:
            self.steps += 1
            return True
        self.steps += 1
        return False

    def open(self, path, mode):
        if "w" not in mode:
            return open(path, mode)
        if self.step():
            raise PowerCut()
        return _CuttingFile(self, open(path, mode))

    def rename(self, old, new):
        if self.step():
            raise PowerCut()
        OsFiles.rename(self, old, new)

    def remove(self, path):
        if self.step():
            raise PowerCut()
        OsFiles.remove(self, path)


class _CuttingFile:
    def __init__(self, files, fh):
        self.files = files
        self.fh = fh

    def write(self, data):
        if self.files.step():
            self.fh.write(data[: len(data) // 2])
            self.fh.close()
            raise PowerCut()
        return self.fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None and self.files.step():
            self.fh.close()
            raise PowerCut()
        self.fh.close()
        return False


def _reading(i):
    return {"seq": i, "ts": 1767225000 + 60 * i, "energy_wh": 1000 + i, "power_w": 12.5, "boot": 3}


def test_fifo_in_ram_only():
    b = ReadingBuffer(capacity=10)
    for i in range(5):
        b.push(_reading(i))
    assert b.depth == 5
    assert [r["seq"] for r in b.peek(3)] == [0, 1, 2]
    b.drop(2)
    assert [r["seq"] for r in b.peek(10)] == [2, 3, 4]
    assert b.dropped == 0


def test_ram_only_bound_drops_oldest_and_counts():
    b = ReadingBuffer(capacity=10)
    for i in range(25):
        b.push(_reading(i))
    assert b.depth == 10 and b.dropped == 15
    assert b.peek(1)[0]["seq"] == 15


def test_spills_to_flash_and_survives_restart():
    d = tmpdir()
    b = ReadingBuffer(capacity=1000, ram=8, segment=5, path=d + "/buf")
    for i in range(40):
        b.push(_reading(i))
    b.sync()
    assert b.depth == 40
    b.drop(7)
    again = ReadingBuffer(capacity=1000, ram=8, segment=5, path=d + "/buf")
    assert again.depth == 33
    assert [r["seq"] for r in again.peek(100)] == list(range(7, 40))
    assert again.peek(1)[0] == _reading(7)


def test_flash_bound_drops_whole_oldest_segment():
    d = tmpdir()
    b = ReadingBuffer(capacity=20, ram=4, segment=5, path=d + "/buf")
    for i in range(50):
        b.push(_reading(i))
    assert b.depth <= 20
    assert b.dropped == 50 - b.depth
    seqs = [r["seq"] for r in b.peek(100)]
    assert seqs == list(range(50 - b.depth, 50))


def test_restamp_and_discard_rewrite_flash():
    d = tmpdir()
    b = ReadingBuffer(capacity=100, ram=4, segment=3, path=d + "/buf")
    for i in range(10):
        r = _reading(i)
        r["ts"] = None
        r["mono_ms"] = i * 1000
        b.push(r)
    b.sync()

    def fix(r):
        if r["ts"] is None:
            r["ts"] = 1767225000 + r["mono_ms"] // 1000
            return True
        return False

    b.restamp(fix)
    b.discard(lambda r: r["seq"] % 2 == 0)
    again = ReadingBuffer(capacity=100, ram=4, segment=3, path=d + "/buf")
    got = again.peek(100)
    assert [r["seq"] for r in got] == [0, 2, 4, 6, 8]
    assert [r["ts"] for r in got] == [1767225000 + s for s in (0, 2, 4, 6, 8)]
    assert b.dropped == 5


def test_power_cut_at_every_write_step_keeps_pending_readings():
    dry = CuttingFiles()
    d = tmpdir()
    _run_until_cut(dry, d + "/buf", {"committed": [], "acked": 0})
    total = dry.steps
    assert total > 40  # creating, writing, closing, renaming, removing segments
    for cut in range(total):
        path = tmpdir() + "/buf"
        files = CuttingFiles(cut)
        state = {"committed": [], "acked": 0}
        try:
            state = _run_until_cut(files, path, state)
        except PowerCut:
            pass
        else:
            raise AssertionError("no power cut at step %d" % cut)
        after = ReadingBuffer(capacity=1000, ram=6, segment=4, path=path)
        seqs = [r["seq"] for r in after.peek(1000)]
        # in order, no repeats, nothing invented
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (cut, seqs)
        assert set(seqs) <= set(range(11)), (cut, seqs)
        # every committed reading not yet acknowledged is still there
        pending = [s for s in state["committed"] if s >= state["acked"]]
        for s in pending:
            assert s in seqs, (cut, s, seqs)
        # and the recovered buffer keeps working
        after.push(_reading(99))
        after.sync()
        assert after.peek(1000)[-1]["seq"] == 99
        # no stray temporary file left behind after start-up
        assert [n for n in os.listdir(path) if n.endswith(".tmp")] == []


def _run_until_cut(files, path, state):
    b = ReadingBuffer(capacity=1000, ram=6, segment=4, path=path, files=files)
    for i in range(11):
        b.push(_reading(i))
        b.sync()
        state["committed"].append(i)
        if i == 8:
            state["acked"] = 2  # the broker acknowledged 0 and 1, then they are dropped
            b.drop(2)
    while b.depth:
        n = len(b.peek(4))
        state["acked"] = state["acked"] + n
        b.drop(n)
    return state
