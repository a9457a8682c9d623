"""The compact key index: first value wins, growth keeps every key, memory stays small."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.manifest.keyindex import KeyIndex, key_hash


def test_first_value_wins_and_absent_keys_are_absent() -> None:
    index = KeyIndex()
    assert index.setdefault("demo/main/ann/main", 3) == 3
    assert index.setdefault("demo/main/ann/main", 9) == 3
    assert index.get("demo/main/ann/main") == 3
    assert index.get("demo/main/bob/main") is None
    assert "demo/main/ann/main" in index and len(index) == 1


def test_growth_keeps_every_key_with_its_value() -> None:
    index = KeyIndex()
    for i in range(5000):
        index.setdefault(f"key-{i}", i)
    assert len(index) == 5000
    assert all(index.get(f"key-{i}") == i for i in range(5000))
    assert index.get("key-5000") is None
    assert index.nbytes <= 12 * 2.5 * 5000  # 12 bytes a slot, at most 2.5 slots per key


def test_a_tag_remembers_who_stored_the_key_first() -> None:
    index = KeyIndex(tagged=True)
    index.setdefault("demo/main/a.wav", 0, tag="ann")
    index.setdefault("demo/main/a.wav", 5, tag="bob")  # too late: ann listed it first
    assert index.tag_matches("demo/main/a.wav", "ann")
    assert not index.tag_matches("demo/main/a.wav", "bob")
    assert not index.tag_matches("demo/main/b.wav", "ann")


@settings(deadline=None)
@given(st.lists(st.text(), max_size=200))
def test_it_agrees_with_a_dict(keys: list[str]) -> None:
    index, reference = KeyIndex(), {}
    for position, key in enumerate(keys):
        assert index.setdefault(key, position) == reference.setdefault(key, position)
    assert len(index) == len(reference)


def test_the_hash_is_never_the_empty_marker() -> None:
    assert key_hash("") != 0 and key_hash("\ud800") != 0
