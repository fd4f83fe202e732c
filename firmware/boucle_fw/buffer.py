# Store-and-forward buffer: readings not yet acknowledged by the broker, oldest first.
#
# A RAM list spills to flash segment files (LittleFS on the device). While the link is
# up readings go out from RAM and flash is never written (no wear). Offline, the device
# calls sync() each cycle so that pending readings survive a power cut.
#
# Every flash change is one atomic step: a segment is written to "<n>.tmp" and renamed
# over "<n>" (LittleFS renames atomically), or removed. A power cut at any point leaves
# each segment either old or new, never torn; stray .tmp files are removed at start.
# Bounded: past `capacity` readings the oldest are dropped (a whole flash segment at a
# time, one remove, rather than rewriting it per reading) and counted in `dropped`.
#
# Runs unchanged on CPython and MicroPython.

import json


class OsFiles:
    """Flash access through the os module (the real filesystem on both interpreters)."""

    def __init__(self):
        import os
        self.os = os

    def listdir(self, path):
        return self.os.listdir(path)

    def mkdir(self, path):
        try:
            self.os.mkdir(path)
        except OSError:
            pass

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, old, new):
        self.os.rename(old, new)

    def remove(self, path):
        self.os.remove(path)


class ReadingBuffer:
    """Bounded FIFO of reading dicts: push(), peek(n), drop(n), depth, dropped.

    path=None keeps everything in RAM (the simulator, or a board without a filesystem).
    """

    def __init__(self, capacity=2000, ram=64, segment=32, path=None, files=None):
        self.capacity = capacity
        self.ram_size = ram
        self.segment = segment
        self.path = path
        self.files = files if files is not None else (OsFiles() if path else None)
        self.dropped = 0
        self.corrupt = 0
        self._ram = []
        self._segs = []      # [segment number, count], oldest first
        self._cache = {}     # segment number -> readings (head and tail only)
        if path:
            self._open()

    # --- public API -----------------------------------------------------------------

    @property
    def depth(self):
        n = len(self._ram)
        for s in self._segs:
            n += s[1]
        return n

    def push(self, reading):
        """Add one reading (newest). Drops the oldest past capacity."""
        self._ram.append(reading)
        if self.path and len(self._ram) >= self.ram_size:
            self.sync()
        self._bound()

    def peek(self, n):
        """Up to n oldest readings, without removing them."""
        out = []
        for segno, _count in self._segs:
            if len(out) >= n:
                return out
            for r in self._load(segno):
                out.append(r)
                if len(out) >= n:
                    return out
        for r in self._ram:
            if len(out) >= n:
                break
            out.append(r)
        return out

    def drop(self, n):
        """Remove the n oldest readings (the broker acknowledged them)."""
        while n > 0 and self._segs:
            segno, count = self._segs[0]
            if n >= count:
                self._remove(segno)
                self._segs.pop(0)
                n -= count
            else:
                rest = self._load(segno)[n:]
                self._write(segno, rest)
                self._segs[0][1] = len(rest)
                n = 0
        if n > 0:
            del self._ram[:n]
        self._trim_cache()

    def sync(self):
        """Put every RAM reading on flash (offline cycle, shutdown, deep sleep)."""
        if not self.path or not self._ram:
            return
        pending = self._ram
        if self._segs and self._segs[-1][1] < self.segment:
            segno = self._segs[-1][0]
            old = self._load(segno)
            room = self.segment - len(old)
            self._write(segno, old + pending[:room])
            self._segs[-1][1] = len(old) + len(pending[:room])
            pending = pending[room:]
        while pending:
            segno = self._segs[-1][0] + 1 if self._segs else 0
            chunk = pending[:self.segment]
            self._write(segno, chunk)
            self._segs.append([segno, len(chunk)])
            pending = pending[self.segment:]
        self._ram = []
        self._trim_cache()

    def ram_readings(self):
        """The readings not on flash yet (newest), e.g. to keep in RTC memory over deep sleep."""
        return list(self._ram)

    def restamp(self, fix):
        """Apply fix(reading) -> bool (True when changed) to every pending reading;
        rewrites only the flash segments that changed."""
        for r in self._ram:
            fix(r)
        for seg in self._segs:
            readings = self._load(seg[0])
            changed = False
            for r in readings:
                if fix(r):
                    changed = True
            if changed:
                self._write(seg[0], readings)
        self._trim_cache()

    def discard(self, keep):
        """Remove pending readings for which keep(reading) is false (counted as dropped)."""
        before = len(self._ram)
        self._ram = [r for r in self._ram if keep(r)]
        self.dropped += before - len(self._ram)
        for seg in list(self._segs):
            readings = self._load(seg[0])
            kept = [r for r in readings if keep(r)]
            if len(kept) != len(readings):
                self.dropped += len(readings) - len(kept)
                if kept:
                    self._write(seg[0], kept)
                    seg[1] = len(kept)
                else:
                    self._remove(seg[0])
                    self._segs.remove(seg)
        self._trim_cache()

    # --- internals ------------------------------------------------------------------

    def _bound(self):
        while self.depth > self.capacity:
            if self._segs:
                segno, count = self._segs.pop(0)
                self._remove(segno)
                self.dropped += count
            else:
                over = len(self._ram) - self.capacity
                del self._ram[:over]
                self.dropped += over

    def _name(self, segno):
        return self.path + "/" + str(segno)

    def _open(self):
        f = self.files
        f.mkdir(self.path)
        nums = []
        for name in f.listdir(self.path):
            if name.endswith(".tmp"):
                f.remove(self.path + "/" + name)  # a write cut short: the old file stands
            elif name.isdigit():
                nums.append(int(name))
        nums.sort()
        for segno in nums:
            readings = self._read(segno)
            if readings is None:
                self.corrupt += 1
                f.remove(self._name(segno))
            elif readings:
                self._segs.append([segno, len(readings)])
            else:
                f.remove(self._name(segno))
        self._trim_cache()

    def _read(self, segno):
        # Format: one JSON reading per line, then "#<count>". Without the trailer the
        # file is not one we finished writing.
        out = []
        try:
            with self.files.open(self._name(segno), "r") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    if line[0] == "#":
                        return out if int(line[1:]) == len(out) else None
                    out.append(json.loads(line))
        except (OSError, ValueError):
            return None
        return None

    def _load(self, segno):
        readings = self._cache.get(segno)
        if readings is None:
            readings = self._read(segno)
            if readings is None:
                raise OSError("buffer segment %d unreadable" % segno)
            self._cache[segno] = readings
        return readings

    def _write(self, segno, readings):
        name = self._name(segno)
        with self.files.open(name + ".tmp", "w") as fh:
            for r in readings:
                fh.write(json.dumps(r))
                fh.write("\n")
            fh.write("#" + str(len(readings)) + "\n")
        self.files.rename(name + ".tmp", name)
        self._cache[segno] = readings

    def _remove(self, segno):
        self._cache.pop(segno, None)
        self.files.remove(self._name(segno))

    def _trim_cache(self):
        # keep the head (next to send) and the tail (next to append to) parsed in RAM
        keep = []
        if self._segs:
            keep.append(self._segs[0][0])
            keep.append(self._segs[-1][0])
        for k in list(self._cache):
            if k not in keep:
                del self._cache[k]
