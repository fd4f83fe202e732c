"""Results cache per (query, data version): any new stored data or registry edit empties it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ResultCache:
    """A bounded LRU of computed answers, valid for one data version and one registry."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._version: Hashable = None
        self._registry: object = None
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, version: Hashable, registry: object,
                       compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(answer, hit): the cached answer for `key` at this version, else `compute()`."""
        if self.max_entries <= 0:
            return compute(), False
        with self._lock:
            if version != self._version or registry is not self._registry:
                self._entries.clear()
                self._version, self._registry = version, registry
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key], True
        answer = compute()
        with self._lock:
            if version == self._version and registry is self._registry:
                self._entries[key] = answer
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return answer, False
