"""Sharing by consent: what a site's owner lets its territory see of the site.

A site's **owner** is whoever holds a site key for it (an API key whose `sites` list it,
not an admin key: docs/ledger.md). The owner records a consent; the newest one counts.
Consents are appended to the store with their time and author, never changed, so the
history of who shared what, and since when, stays readable.

- `indicators` (the default, with no consent recorded): the territory's keys see the site's
  indicators and the site counts in the territory's, but no readings;
- `readings`: they also see its readings, at `resolution_s` (0: as stored, which lets them
  check the site's readings against the ledger; 900, 3600 or 86400: a device's last
  reading of each quarter-hour, hour or day).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Shares = Literal["indicators", "readings"]
RESOLUTIONS = (0, 900, 3600, 86400)
"""Resolutions a site may share its readings at (seconds; 0: as stored)."""


@dataclass(frozen=True)
class Consent:
    """One consent decision of a site's owner."""

    site: str
    at: float
    """When it was recorded (the API's clock, UTC seconds)."""
    author: str
    """The id of the key that recorded it."""
    shares: Shares
    resolution_s: int = 0

    def __post_init__(self) -> None:
        if self.shares not in ("indicators", "readings"):
            raise ValueError(f"shares={self.shares!r}: use 'indicators' or 'readings'")
        if self.resolution_s not in RESOLUTIONS:
            raise ValueError(f"resolution_s={self.resolution_s}: use one of {', '.join(map(str, RESOLUTIONS))}")


def current(consents: Iterable[Consent], site: str) -> Consent | None:
    """The site's newest consent (None: none recorded, the default applies)."""
    found = None
    for c in consents:
        if c.site == site and (found is None or c.at >= found.at):
            found = c
    return found


def shared_resolution(consent: Consent | None) -> int | None:
    """The resolution the territory sees the site's readings at, None for none."""
    return consent.resolution_s if consent is not None and consent.shares == "readings" else None


def downsample(times: Sequence[int], resolution_s: int) -> list[int]:
    """Indexes of the readings (by time, oldest first) a resolution shows: all at 0, else
    each bucket's last."""
    if resolution_s == 0:
        return list(range(len(times)))
    out: list[int] = []
    for i, t in enumerate(times):
        if out and times[out[-1]] // resolution_s == t // resolution_s:
            out[-1] = i
        else:
            out.append(i)
    return out
