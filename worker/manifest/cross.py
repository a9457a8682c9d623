"""The rules across enrollments: a voiceprint once per job, an audio for one identity only.

Owns: `build_each`, which validates candidates one at a time (`build.Builder`) and then checks
each valid enrollment against those before it (the first one listed wins). It remembers only
compact keys, never enrollments: 64-bit hashes in `worker.manifest.keyindex` tables (~17 MB, ~29 MB
tagged, per million). A hash says "maybe seen"; where the format can read an earlier enrollment
again (`lookup`: a CSV's rows by offset, a small JSON document in memory), a hit is confirmed on
the real keys before anything is reported, and a key whose hash another key took first is kept
exactly instead, so a collision never makes a false duplicate nor hides a real one. Without a
`lookup` (a streamed JSON file) a hit is trusted: one chance in ~3·10⁷ per million keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from worker.manifest.build import Builder, Candidate
from worker.manifest.keyindex import KeyIndex
from worker.manifest.models import Enrollment, ManifestItem, Problem, RejectedEnrollment
from worker.manifest.values import show

# The enrollment built at a position (a CSV group's first line, a JSON item's index), if any.
Lookup = Callable[[int], ManifestItem | None]


class _FirstListed:
    """key -> (position first listed, its identity), on hashes, confirmed through `lookup`."""

    def __init__(
        self,
        keys_of: Callable[[Enrollment], list[str]],
        lookup: Lookup | None,
        n: int,
        *,
        tagged: bool,
    ):
        self.index = KeyIndex(tagged=tagged, capacity=n)  # tagged: the identity is compared
        self.tagged = tagged
        self.exact: dict[str, tuple[int, str]] = {}  # keys whose hash another key took first
        self.keys_of = keys_of
        self.lookup = lookup
        self._last: tuple[int, ManifestItem | None] | None = None

    def _at(self, position: int) -> ManifestItem | None:
        if self._last is None or self._last[0] != position:
            self._last = (position, self.lookup(position) if self.lookup else None)
        return self._last[1]

    def first(self, key: str, identity: str) -> tuple[int, bool] | None:
        """(position, same identity) of the first enrollment listing `key`, or None."""
        if key in self.exact:
            position, first_identity = self.exact[key]
            return position, first_identity == identity
        position = self.index.get(key)
        if position is None:
            return None
        if self.lookup is None:
            return position, self.tagged and self.index.tag_matches(key, identity)
        earlier = self._at(position)
        if not isinstance(earlier, Enrollment) or key not in self.keys_of(earlier):
            return None  # another key's hash: this one is new
        return position, earlier.identity == identity

    def remember(self, key: str, position: int, identity: str) -> None:
        if self.index.get(key) is None:
            self.index.setdefault(key, position, tag=identity)
        elif self.lookup is not None and key not in self.exact and self.first(key, "") is None:
            self.exact[key] = (position, identity)


def build_each(
    builder: Builder,
    candidates: Iterable[Candidate],
    *,
    lookup: Lookup | None = None,
    unique_keys: bool = False,
    expected: int = 0,
) -> Iterator[ManifestItem]:
    """Validate each candidate, then the rules across enrollments (first one wins).

    A generator holding only compact keys. `unique_keys`: the format already grouped its rows
    by key (CSV), so two enrollments never share one. `expected`: how many there will be, so
    the tables are sized once.
    """
    keys = None
    if not unique_keys:
        keys = _FirstListed(lambda e: [e.key], lookup, expected, tagged=False)
    audios = _FirstListed(Enrollment.audio_keys, lookup, expected, tagged=True)
    for cand in candidates:
        built = builder.build(cand)
        if isinstance(built, RejectedEnrollment):
            yield built
            continue
        audio_keys = built.audio_keys()
        cross = _duplicate(builder, keys, built, cand.place)
        cross.extend(_shared_audios(builder, audios, built, audio_keys, cand.place))
        if cross:
            yield _rejected(built, cross, builder.given(cand))
            continue
        if keys is not None:
            keys.remember(built.key, built.position, built.identity)
        for audio_key in audio_keys:
            audios.remember(audio_key, built.position, built.identity)
        yield built


def _duplicate(
    builder: Builder, keys: _FirstListed | None, built: Enrollment, place: str
) -> list[Problem]:
    """A voiceprint may appear once per job."""
    first = keys.first(built.key, built.identity) if keys is not None else None
    if first is None:
        return []
    reason = (
        f"voiceprint {show(built.voiceprint)} is already listed at "
        f"{builder.place_of(first[0])}; a voiceprint may appear once per job"
    )
    return [builder.problem(place, "identity", built.identity, reason)]


def _shared_audios(
    builder: Builder, audios: _FirstListed, built: Enrollment, audio_keys: list[str], place: str
) -> list[Problem]:
    """One audio belongs to one identity (the agent's channel of a call may enroll the agent)."""
    out = []
    for audio_key, name in zip(audio_keys, built.audio_names, strict=True):
        first = audios.first(audio_key, built.identity)
        if first is not None and not first[1]:
            reason = (
                f"also listed for another identity at {builder.place_of(first[0])}; "
                "an audio can belong to one identity only"
            )
            out.append(builder.problem(place, builder.names.get("audios", "audios"), name, reason))
    return out


def _rejected(
    built: Enrollment, problems: list[Problem], given: dict[str, Any]
) -> RejectedEnrollment:
    return RejectedEnrollment(
        source=built.source,
        position=built.position,
        owner=built.owner,
        space=built.space,
        identity=built.identity,
        voiceprint=built.voiceprint,
        problems=tuple(problems),
        rows=built.rows,
        row_lines=built.row_lines,
        given=given,
    )
