"""The ledger's pure core (boucle.ledger): Merkle trees, audit paths, day trees, the chain."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from boucle import ledger
from boucle.protocol import INTEGER_FIELDS

leaves = st.lists(st.binary(max_size=8).map(ledger.leaf_hash), min_size=1, max_size=40)


def rfc6962_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, as written: split at the largest power of two below n."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return ledger.node_hash(rfc6962_root(hashes[:k]), rfc6962_root(hashes[k:]))


@settings(deadline=None)  # a shared, loaded machine: no time limit per example
@given(st.lists(st.binary(max_size=8).map(ledger.leaf_hash), max_size=40))
def test_root_is_rfc6962s(hashes):
    assert ledger.merkle_root(hashes) == rfc6962_root(hashes)


@settings(deadline=None)
@given(leaves, st.data())
def test_every_leaf_has_a_path_and_no_other_leaf_fits_it(hashes, data):
    root = ledger.merkle_root(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1))
    path = ledger.audit_path(hashes, i)
    assert ledger.verify_path(hashes[i], path, root)
    assert not ledger.verify_path(ledger.leaf_hash(b"other"), path, root)
    if len(hashes) > 1:
        j = data.draw(st.integers(0, len(hashes) - 1).filter(lambda j: hashes[j] != hashes[i]))
        assert not ledger.verify_path(hashes[j], path, root)  # the same path, another leaf
        assert not ledger.verify_path(hashes[i], replace(path, index=(i + 1) % len(hashes)), root) \
            or hashes[i] == hashes[(i + 1) % len(hashes)]
    assert ledger.root_from_path(hashes[i], replace(path, hashes=path.hashes + (root,))) is None


@settings(deadline=None)
@given(leaves, st.data())
def test_a_changed_or_dropped_leaf_changes_the_root(hashes, data):
    root = ledger.merkle_root(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1))
    changed = [*hashes[:i], ledger.leaf_hash(hashes[i]), *hashes[i + 1:]]
    assert ledger.merkle_root(changed) != root
    assert ledger.merkle_root(hashes[:i] + hashes[i + 1:]) != root


values = st.fixed_dictionaries({}, optional={
    "energy_wh": st.one_of(st.none(), st.integers(0, 2**62)), "weight_g": st.integers(-2**40, 2**40),
    "power_w": st.one_of(st.none(), st.floats(allow_nan=False)), "fill_pct": st.floats(allow_nan=False)})
readings = st.tuples(st.sampled_from(["dev-a", "dev-b"]), st.integers(0, 2**40), st.integers(0, 100),
                     st.integers(0, 2**31), values)


@settings(deadline=None)
@given(readings, readings)
def test_reading_bytes_tell_readings_apart(a, b):
    def present(r):
        return (*r[:4], {k: v for k, v in r[4].items() if v is not None})

    same = present(a) == present(b)
    assert (ledger.reading_bytes(*a, INTEGER_FIELDS) == ledger.reading_bytes(*b, INTEGER_FIELDS)) == same


def _site(site: str, n: int, offset: int = 0) -> ledger.SiteTree:
    return ledger.site_tree(site, {f"{site}-d{d}": [ledger.reading_bytes(f"{site}-d{d}", 1000 + t, 1, t + offset,
                                                                          {"power_w": 10.0 * t}, INTEGER_FIELDS)
                                                     for t in range(n)] for d in range(2)})


@settings(deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_a_reading_is_proven_in_its_day(n_a, n_b, data):
    trees = [_site("site-a", n_a), _site("site-b", n_b), _site("site-c", 3)]
    roots = [t.root() for t in trees]
    root = ledger.day_root(roots)
    tree = data.draw(st.sampled_from(trees))
    device = data.draw(st.sampled_from(sorted(tree.devices)))
    t = data.draw(st.integers(0, len(tree.devices[device]) - 1))
    reading = ledger.reading_bytes(device, 1000 + t, 1, t, {"power_w": 10.0 * t}, INTEGER_FIELDS)
    proof = ledger.prove(tree, roots, reading)
    assert ledger.verify_proof(proof, root)
    assert ledger.verify_proof(ledger.proof_of(ledger.proof_doc(proof)), root)
    forged = ledger.reading_bytes(device, 1000 + t, 1, t, {"power_w": 10.0 * t + 1}, INTEGER_FIELDS)
    assert not ledger.verify_proof(replace(proof, reading=forged), root)
    assert not ledger.verify_proof(proof, ledger.day_root(roots[:-1]))


def _chain(days: int) -> list[ledger.LedgerEntry]:
    chain: list[ledger.LedgerEntry] = []
    for d in range(days):
        chain.append(ledger.seal("ecully", 86400 * d, [_site("site-a", d + 1).root()], chain, 1e9 + d))
    return chain


@settings(deadline=None)
@given(st.integers(2, 6), st.data())
def test_any_rewritten_entry_breaks_the_chain(days, data):
    chain = _chain(days)
    assert ledger.chain_problems(chain) == []
    assert [ledger.entry_of(ledger.entry_doc(e)) for e in chain] == chain
    i = data.draw(st.integers(0, days - 1))
    other = _site("site-a", 20, offset=7).root()
    how = data.draw(st.sampled_from(["root", "resealed", "dropped"]))
    if how == "root":  # the root changed, the digest left
        forged = [*chain[:i], replace(chain[i], root=other.root, sites=(other,), count=other.count), *chain[i + 1:]]
    elif how == "resealed":  # the day replaced, its entry sealed again over the entry before it
        forged = [*chain[:i], ledger.seal("ecully", chain[i].day, [other], chain[:i], 0), *chain[i + 1:]]
    else:
        forged = chain[:i] + chain[i + 1:]
    if how != "root" and i == days - 1:
        # the newest entry resealed, or cut off: only its day's readings (verify), or an
        # anchored digest (docs/ledger.md), can tell
        assert ledger.chain_problems(forged) == []
    else:
        assert ledger.chain_problems(forged)


def test_late_readings_make_a_new_version_chained():
    chain = _chain(2)
    chain.append(ledger.seal("ecully", 0, [_site("site-a", 5).root()], chain, 2e9))
    assert (chain[-1].day, chain[-1].version, chain[-1].prev) == (0, 2, chain[1].digest)
    assert ledger.latest(chain)[0] is chain[-1]
    assert ledger.chain_problems(chain) == []


def test_the_docs_test_vector_is_what_the_code_computes():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ledger.md").read_text("utf-8")
    first = ledger.reading_bytes("atelier-grid", 1774656000, 1, 0, {"energy_wh": 0, "power_w": 1000.0}, INTEGER_FIELDS)
    second = ledger.reading_bytes("atelier-grid", 1774656600, 1, 1, {"energy_wh": 166, "power_w": 1000.0},
                                  INTEGER_FIELDS)
    site = ledger.site_tree("atelier", {"atelier-grid": [second, first]}).root()
    entry = ledger.seal("vallee", 1774656000, [site], [], 0.0)
    checked = ledger.seal("vallee", 1774656000, [site], [], 0.0, [ledger.DeviceCheck("atelier", "atelier-grid", 2, 2)])
    for figure in (first.hex(), ledger.leaf_hash(first).hex(), site.root.hex(), entry.root.hex(), entry.digest.hex(),
                   ledger.checks_hash(checked.checks).hex(), checked.digest.hex()):
        assert figure in doc
