"""A real store whose calls are counted: what a test of "nothing read back" looks at."""

from collections import Counter


class Counting:
    """A real store, with its calls counted."""

    def __init__(self, store):
        self.store, self.calls = store, Counter()

    def __getattr__(self, name):
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def call(*args, **kwargs):
            self.calls[name] += 1
            return found(*args, **kwargs)

        return call
