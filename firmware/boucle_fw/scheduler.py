# Sampling scheduler: periodic tasks on a monotonic millisecond clock, without drift.
#
# A task due at t runs next at t + period (not now + period), so a sample every 60 s
# stays on its grid even when a cycle takes 3 s. After a long stall (publishing through
# an outage) missed runs are skipped, not run in a burst. Runs on CPython and MicroPython.


class Scheduler:
    def __init__(self):
        self._tasks = []  # [name, period_ms, next_ms]

    def every(self, name, period_ms, first_ms=0):
        """Run task `name` every period_ms, first at first_ms; replaces a task of that name."""
        self.cancel(name)
        self._tasks.append([name, int(period_ms), int(first_ms)])

    def cancel(self, name):
        self._tasks = [t for t in self._tasks if t[0] != name]

    def period(self, name):
        for t in self._tasks:
            if t[0] == name:
                return t[1]
        return None

    def reschedule(self, name, period_ms, now_ms):
        """Change a task's period, next run one new period from now."""
        self.every(name, period_ms, now_ms + period_ms)

    def due(self, now_ms):
        """Names of the tasks due at now_ms, in the order they were added; advances them."""
        out = []
        for t in self._tasks:
            if now_ms >= t[2]:
                out.append(t[0])
                t[2] += t[1]
                if t[2] <= now_ms:  # stalled for more than a period: back on the grid
                    t[2] += ((now_ms - t[2]) // t[1] + 1) * t[1]
        return out

    def wait_ms(self, now_ms):
        """Milliseconds until the next task is due (0 if one is due now)."""
        if not self._tasks:
            return 1000
        soonest = min(t[2] for t in self._tasks)
        return max(0, soonest - now_ms)
