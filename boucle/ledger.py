"""The daily ledger's pure core: what a stored reading is as bytes, the Merkle trees over a
territory's readings of a UTC day, and the chain of day digests. No I/O: the gateway
(gateway.ledger_stage), the API and `boucle verify` (cloud.verify) all compute with this
module, and a third party can recompute every digest from docs/ledger.md alone.

- A reading's **leaf** is `reading_bytes()` (a fixed field order, big-endian integers,
  IEEE 754 doubles); its hash `leaf_hash()` is SHA-256(0x00 ‖ bytes), a node's
  SHA-256(0x01 ‖ left ‖ right): the trees of RFC 6962 / RFC 9162 (Certificate Transparency).
- A **day tree** has three levels: a device's readings (sorted by ts, boot, seq) → its
  device root; a site's device entries (sorted by device id) → the site root; the
  territory's site entries (sorted by site id) → the day root. A site's data can then be
  checked against the day root with the other sites' roots alone, and a reading proven to
  belong to the day with three audit paths.
- A **ledger entry** seals one version of one territory's day; entries form one chain per
  territory in sealing order (`seq` 0, 1, ...): each entry's digest covers the digest of
  the entry before it, so rewriting any entry breaks every later one. Late readings of a
  sealed day make a new version of that day, appended to the chain.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LEDGER_FORMAT = 1
"""Version of the encodings below (in every leaf and every entry digest)."""
GENESIS = bytes(32)
"""The `prev` of a territory's first entry."""
DOMAIN = b"boucle-ledger/1\n"
DOMAIN_CHECKS = b"boucle-ledger/2\n"
"""The digest's domain for an entry that records its signature checks (DeviceCheck)."""
_INT, _FLOAT = b"i", b"f"
_TS_BOOT_SEQ = struct.Struct(">qqq")
_I64, _F64 = struct.Struct(">q"), struct.Struct(">d")


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"name {text[:40]!r}... longer than 255 bytes")
    return bytes([len(raw)]) + raw


_FIELD_PREFIX: dict[tuple[str, bool], bytes] = {}


def reading_bytes(device: str, ts: int, boot: int, seq: int, values: Mapping[str, float | int | None],
                  integer_fields: frozenset[str]) -> bytes:
    """A stored reading's canonical bytes: format, device, ts, boot, seq, then each present
    measurement (not None) sorted by name, as name, type (`i`: int64, `f`: float64) and value.
    `integer_fields`: the fields stored as integers (boucle.protocol.INTEGER_FIELDS)."""
    parts = [bytes([LEDGER_FORMAT]), _name(device), _TS_BOOT_SEQ.pack(int(ts), int(boot), int(seq))]
    present = sorted((k, v) for k, v in values.items() if v is not None and not math.isnan(v))
    parts.append(bytes([len(present)]))
    for name, value in present:
        is_int = name in integer_fields
        prefix = _FIELD_PREFIX.get((name, is_int))
        if prefix is None:
            prefix = _FIELD_PREFIX[(name, is_int)] = _name(name) + (_INT if is_int else _FLOAT)
        parts.append(prefix)
        parts.append(_I64.pack(int(value)) if is_int else _F64.pack(float(value)))
    return b"".join(parts)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of a tree without leaves (RFC 6962)."""


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of these leaf hashes (pairs from the left, an odd last
    node carried up a level as it is)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


@dataclass(frozen=True)
class AuditPath:
    """Where a leaf is in a tree of `size` leaves, and the sibling hashes up to the root."""

    index: int
    size: int
    hashes: tuple[bytes, ...]


def audit_path(leaves: Sequence[bytes], index: int) -> AuditPath:
    """The audit path of leaf `index` among these leaf hashes."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} not in a tree of {len(leaves)}")
    level, i, out = list(leaves), index, []
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        paired = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level, i = paired, i // 2
    return AuditPath(index, len(leaves), tuple(out))


def root_from_path(leaf: bytes, path: AuditPath) -> bytes | None:
    """The root that `path` leads `leaf` (a leaf hash) to; None for a path that cannot be
    one of a tree of its size (wrong length)."""
    if not 0 <= path.index < path.size:
        return None
    h, i, n, hashes = leaf, path.index, path.size, list(path.hashes)
    while n > 1:
        if i % 2 or i + 1 < n:
            if not hashes:
                return None
            sibling = hashes.pop(0)
            h = node_hash(sibling, h) if i % 2 else node_hash(h, sibling)
        i, n = i // 2, (n + 1) // 2
    return None if hashes else h


def verify_path(leaf: bytes, path: AuditPath, root: bytes) -> bool:
    """Whether `leaf` (a leaf hash) is at `path.index` of the tree whose root is `root`."""
    return root_from_path(leaf, path) == root


# --- the day tree ---------------------------------------------------------------------


def device_entry(device: str, root: bytes, count: int) -> bytes:
    """A device's leaf in its site's tree."""
    return leaf_hash(b"D" + _name(device) + count.to_bytes(8, "big") + root)


def site_entry(site: str, root: bytes, count: int) -> bytes:
    """A site's leaf in the day tree."""
    return leaf_hash(b"S" + _name(site) + count.to_bytes(8, "big") + root)


@dataclass(frozen=True)
class SiteRoot:
    """A site's part of a day: its root and how many readings it holds."""

    site: str
    root: bytes
    count: int


@dataclass(frozen=True)
class SiteTree:
    """A site's readings of a day as a tree: per device (sorted) its sorted leaf hashes."""

    site: str
    devices: dict[str, list[bytes]]

    @property
    def count(self) -> int:
        return sum(map(len, self.devices.values()))

    def device_leaves(self) -> list[bytes]:
        return [device_entry(d, merkle_root(h), len(h)) for d, h in sorted(self.devices.items())]

    def root(self) -> SiteRoot:
        return site_root(self.site, {d: (merkle_root(h), len(h)) for d, h in self.devices.items()})


def site_root(site: str, devices: Mapping[str, tuple[bytes, int]]) -> SiteRoot:
    """A site's root from its devices' roots and reading counts (devices without readings
    left out)."""
    present = sorted((d, root, n) for d, (root, n) in devices.items() if n)
    return SiteRoot(site, merkle_root([device_entry(d, root, n) for d, root, n in present]),
                    sum(n for _, _, n in present))


def site_tree(site: str, readings: Mapping[str, Iterable[bytes]]) -> SiteTree:
    """The tree of a site's readings of a day: `readings` by device, as reading_bytes
    (sorted here, by their bytes' ts, boot and seq)."""
    return SiteTree(site, {d: [leaf_hash(b) for b in sorted(rs, key=_order)] for d, rs in readings.items() if rs})


def _order(data: bytes) -> tuple[int, int, int]:
    return _TS_BOOT_SEQ.unpack_from(data, 2 + data[1])  # after the format byte and the device name


def day_root(sites: Iterable[SiteRoot]) -> bytes:
    """The root of a territory's day from its sites' roots (sites without readings left out)."""
    return merkle_root([site_entry(s.site, s.root, s.count) for s in sorted(sites, key=lambda s: s.site) if s.count])


@dataclass(frozen=True)
class ReadingProof:
    """That a reading belongs to a day: its bytes, and the paths from its leaf to its
    device root, from the device's entry to its site root, from the site's to the day root."""

    site: str
    device: str
    reading: bytes
    device_count: int
    site_count: int
    in_device: AuditPath
    in_site: AuditPath
    in_day: AuditPath


def prove(tree: SiteTree, sites: Sequence[SiteRoot], reading: bytes) -> ReadingProof:
    """The proof of `reading` (its bytes) in `tree`, a site tree of the day whose sites'
    roots are `sites`; KeyError if the reading is not in it."""
    leaf = leaf_hash(reading)
    device = reading[2:2 + reading[1]].decode()
    leaves = tree.devices.get(device, [])
    if leaf not in leaves:
        raise KeyError("reading not in the site's tree")
    devices = sorted(tree.devices)
    present = sorted((s for s in sites if s.count), key=lambda s: s.site)
    at = next(i for i, s in enumerate(present) if s.site == tree.site)
    return ReadingProof(tree.site, device, reading, len(leaves), tree.count,
                        audit_path(leaves, leaves.index(leaf)),
                        audit_path(tree.device_leaves(), devices.index(device)),
                        audit_path([site_entry(s.site, s.root, s.count) for s in present], at))


def verify_proof(proof: ReadingProof, root: bytes) -> bool:
    """Whether the proof leads its reading to the day root `root`."""
    device_root = root_from_path(leaf_hash(proof.reading), proof.in_device)
    if device_root is None or proof.in_device.size != proof.device_count:
        return False
    site_root = root_from_path(device_entry(proof.device, device_root, proof.device_count), proof.in_site)
    if site_root is None:
        return False
    return verify_path(site_entry(proof.site, site_root, proof.site_count), proof.in_day, root)


# --- the chain ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCheck:
    """How many of a device's readings of the day (at one site) the gateway stored with their
    signature checked against the device's key (the others were taken unsigned, as the
    registry allowed: a device without a key)."""

    site: str
    device: str
    count: int
    checked: int


def checks_hash(checks: Iterable[DeviceCheck]) -> bytes:
    """SHA-256 of "C" ‖ per device (sorted by site, device): site, device (length-prefixed),
    count and checked (uint64 each)."""
    parts = [b"C"]
    for c in sorted(checks, key=lambda c: (c.site, c.device)):
        parts += [_name(c.site), _name(c.device), c.count.to_bytes(8, "big"), c.checked.to_bytes(8, "big")]
    return hashlib.sha256(b"".join(parts)).digest()


def entry_digest(territory: str, seq: int, day: int, version: int, count: int, root: bytes, prev: bytes,
                 checks: Sequence[DeviceCheck] | None = None) -> bytes:
    """SHA-256 of DOMAIN ‖ territory ‖ seq ‖ day ‖ version ‖ count ‖ day root ‖ prev digest;
    for an entry that records its signature checks, of DOMAIN_CHECKS ‖ the same ‖
    checks_hash(checks)."""
    body = (_name(territory) + seq.to_bytes(8, "big") + _I64.pack(day) + version.to_bytes(4, "big")
            + count.to_bytes(8, "big") + root + prev)
    if checks is None:
        return hashlib.sha256(DOMAIN + body).digest()
    return hashlib.sha256(DOMAIN_CHECKS + body + checks_hash(checks)).digest()


@dataclass(frozen=True)
class LedgerEntry:
    """One sealed version of a territory's UTC day (see the module docstring)."""

    territory: str
    seq: int
    day: int
    version: int
    count: int
    root: bytes
    prev: bytes
    digest: bytes
    sealed_at: float
    """When the gateway sealed it (its clock): readings received later are late ones."""
    sites: tuple[SiteRoot, ...] = field(default=())
    checks: tuple[DeviceCheck, ...] | None = None
    """Per device with readings, how many had their signature checked (sorted by site,
    device); None in an entry sealed before the ledger recorded it."""

    def signature_checks(self, device: str) -> tuple[int, int] | None:
        """(readings, checked) of a device in this entry, None when the entry does not say."""
        if self.checks is None:
            return None
        found = [c for c in self.checks if c.device == device]
        return sum(c.count for c in found), sum(c.checked for c in found)


def seal(territory: str, day: int, sites: Sequence[SiteRoot], chain: Sequence[LedgerEntry],
         sealed_at: float, checks: Iterable[DeviceCheck] | None = None) -> LedgerEntry:
    """The next entry of a territory's chain (`chain`: its entries so far, by seq): the
    day's next version. `checks`: its devices' signature checks (recorded in the entry and
    its digest)."""
    last = chain[-1] if chain else None
    seq = last.seq + 1 if last else 0
    prev = last.digest if last else GENESIS
    version = 1 + max((e.version for e in chain if e.day == day), default=0)
    kept = tuple(sorted((s for s in sites if s.count), key=lambda s: s.site))
    count = sum(s.count for s in kept)
    root = day_root(kept)
    checked = None if checks is None else tuple(sorted((c for c in checks if c.count),
                                                       key=lambda c: (c.site, c.device)))
    return LedgerEntry(territory, seq, day, version, count, root, prev,
                       entry_digest(territory, seq, day, version, count, root, prev, checked), sealed_at, kept,
                       checked)


def signature_word(count: int, checked: int) -> str:
    """What a device's readings of a day are as to signatures, in words."""
    if count and checked == count:
        return "signed and checked"
    return "unsigned" if not checked else f"partly signed and checked ({checked} of {count})"


def _checks_problem(e: LedgerEntry) -> str | None:
    """Why an entry's signature checks cannot be its sites' readings, if they cannot."""
    if e.checks is None:
        return None
    per_site: dict[str, int] = {}
    for c in e.checks:
        if not 0 <= c.checked <= c.count:
            return f"device {c.device}: {c.checked} of {c.count} readings checked"
        per_site[c.site] = per_site.get(c.site, 0) + c.count
    if per_site != {s.site: s.count for s in e.sites}:
        return "its signature checks do not count its sites' readings"
    return None


def chain_problems(chain: Sequence[LedgerEntry], whole: bool = True) -> list[str]:
    """What is wrong with a territory's chain (by seq): gaps, broken links, digests or roots
    that do not follow from the entry; empty when it holds. `whole=False`: a run of the
    chain, its first entry's link taken as given (an export's)."""
    problems: list[str] = []
    prev, expected = (GENESIS, 0) if whole or not chain else (chain[0].prev, chain[0].seq)
    for e in chain:
        if e.seq != expected:
            problems.append(f"entry {e.seq}: expected entry {expected} (an entry is missing)")
        if e.prev != prev:
            problems.append(f"entry {e.seq} (day {e.day} v{e.version}): does not follow the entry before it")
        if e.digest != entry_digest(e.territory, e.seq, e.day, e.version, e.count, e.root, e.prev, e.checks):
            problems.append(f"entry {e.seq} (day {e.day} v{e.version}): its digest does not match its content")
        checks = _checks_problem(e)
        if checks:
            problems.append(f"entry {e.seq} (day {e.day} v{e.version}): {checks}")
        if e.sites and (day_root(e.sites) != e.root or sum(s.count for s in e.sites) != e.count):
            problems.append(f"entry {e.seq} (day {e.day} v{e.version}): its sites' roots do not make its root")
        prev, expected = e.digest, e.seq + 1
    return problems


def latest(chain: Iterable[LedgerEntry]) -> dict[int, LedgerEntry]:
    """The current (highest) version of each day, by day."""
    out: dict[int, LedgerEntry] = {}
    for e in chain:
        if e.day not in out or e.version > out[e.day].version:
            out[e.day] = e
    return out


# --- plain forms (API, exports) -------------------------------------------------------


def entry_doc(e: LedgerEntry) -> dict:
    """An entry as JSON-ready data (hashes in hex)."""
    return {"territory": e.territory, "seq": e.seq, "day": e.day, "version": e.version, "count": e.count,
            "root": e.root.hex(), "prev": e.prev.hex(), "digest": e.digest.hex(), "sealed_at": e.sealed_at,
            "sites": [{"site": s.site, "root": s.root.hex(), "count": s.count} for s in e.sites],
            **({} if e.checks is None else {"checks": [
                {"site": c.site, "device": c.device, "count": c.count, "checked": c.checked} for c in e.checks]})}


def entry_of(doc: Mapping) -> LedgerEntry:
    """entry_doc's inverse (an entry without `checks`, sealed before they were recorded, has None)."""
    checks = doc.get("checks")
    return LedgerEntry(doc["territory"], int(doc["seq"]), int(doc["day"]), int(doc["version"]), int(doc["count"]),
                       bytes.fromhex(doc["root"]), bytes.fromhex(doc["prev"]), bytes.fromhex(doc["digest"]),
                       float(doc["sealed_at"]),
                       tuple(SiteRoot(s["site"], bytes.fromhex(s["root"]), int(s["count"])) for s in doc["sites"]),
                       None if checks is None else tuple(DeviceCheck(c["site"], c["device"], int(c["count"]),
                                                                     int(c["checked"])) for c in checks))


def path_doc(p: AuditPath) -> dict:
    return {"index": p.index, "size": p.size, "hashes": [h.hex() for h in p.hashes]}


def path_of(doc: Mapping) -> AuditPath:
    return AuditPath(int(doc["index"]), int(doc["size"]), tuple(bytes.fromhex(h) for h in doc["hashes"]))


def proof_doc(p: ReadingProof) -> dict:
    return {"site": p.site, "device": p.device, "reading": p.reading.hex(), "device_count": p.device_count,
            "site_count": p.site_count, "in_device": path_doc(p.in_device), "in_site": path_doc(p.in_site),
            "in_day": path_doc(p.in_day)}


def proof_of(doc: Mapping) -> ReadingProof:
    return ReadingProof(doc["site"], doc["device"], bytes.fromhex(doc["reading"]), int(doc["device_count"]),
                        int(doc["site_count"]), path_of(doc["in_device"]), path_of(doc["in_site"]),
                        path_of(doc["in_day"]))
