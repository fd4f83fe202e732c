"""Dead letters: refused messages kept with their reason, and the bounds of their store.

Both stores keep letters per device (the topic's device segment) and trim them the same
way (`trim_letters`): each device past its bounds loses its oldest letters, then, past
the total bounds, the oldest of all go. A store brings its own tally and deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message, kept with its reason so nothing is silently lost."""

    received: float
    topic: str
    error: str
    path: str
    message: str
    payload: bytes
    key: str = ""  # content hash: a redelivered copy is the same dead letter
    device: str = ""  # the topic's device segment ("" for a topic without one): what the bounds count by


def letter_size(letter: DeadLetter) -> int:
    """Bytes a dead letter holds: its payload and its texts (what its bounds count)."""
    texts = (letter.topic, letter.error, letter.path, letter.message, letter.key, letter.device)
    return len(letter.payload) + sum(len(t.encode()) for t in texts)


@dataclass(frozen=True, slots=True)
class DeadLetterBounds:
    """How much a store keeps of dead letters, per device and in all; past a bound the
    oldest go first."""

    per_device: int = 1000
    device_bytes: int = 8 * 2**20
    total: int = 100_000
    total_bytes: int = 256 * 2**20


@dataclass(frozen=True, slots=True)
class DeadLetterTrim:
    """What a trim did, and what the store holds after it."""

    dropped_device: int
    """Letters dropped because their device was over its bound."""
    dropped_total: int
    """Letters dropped because the store was over its bound."""
    devices_over: tuple[str, ...]
    """Devices found over their bound."""
    over_total: bool
    letters: int
    bytes: int


DropOldest = Callable[[str | None, int, int, int, int], tuple[int, int]]
"""`drop(device or None for all, letters, bytes, max_letters, max_bytes)`: delete the
oldest letters until the rest fits; how many, and their bytes."""


def trim_letters(bounds: DeadLetterBounds, tally: dict[str, tuple[int, int]], drop: DropOldest) -> DeadLetterTrim:
    """Trim a store to its bounds, given its tally (device → letters, bytes) and its way
    of dropping the oldest letters."""
    over = tuple(d for d, (n, size) in tally.items() if n > bounds.per_device or size > bounds.device_bytes)
    dropped_device = 0
    for device in over:
        n, size = tally[device]
        dropped, freed = drop(device, n, size, bounds.per_device, bounds.device_bytes)
        tally[device] = (n - dropped, size - freed)
        dropped_device += dropped
    letters, size = sum(n for n, _ in tally.values()), sum(b for _, b in tally.values())
    over_total = letters > bounds.total or size > bounds.total_bytes
    dropped_total = 0
    if over_total:
        dropped_total, freed = drop(None, letters, size, bounds.total, bounds.total_bytes)
        letters, size = letters - dropped_total, size - freed
    return DeadLetterTrim(dropped_device, dropped_total, over, over_total, letters, size)


def oldest_to_drop(letters: int, size: int, max_letters: int, max_bytes: int, sizes: Iterable[int]) -> int:
    """How many of the oldest letters (`sizes`, oldest first) to drop so that the rest,
    of `letters` letters and `size` bytes, fits both bounds."""
    drop = 0
    for letter in sizes:
        if letters - drop <= max_letters and size <= max_bytes:
            break
        drop += 1
        size -= letter
    return drop
