"""Writing a result whose lists are too long to hold: JSON arrays written as their items come,
and lines kept on disk until their turn.

Owns: `StreamedObject`, the worker's one streaming JSON writer (an object whose members are
arrays written item by item and fields dumped from a model, compact or indented: the document
stays valid whatever the count; `validate --json`, `plan --json`, the job report and the retry
manifest are all written by it), `EncodedText` (its sink over a binary file) and `Spool`
(problems parked in a temporary file, replayed in order: warnings are printed after a file's
problems, yet a million of them must not sit in memory). It knows nothing of manifests.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Generic, Protocol, TypeVar

from pydantic import BaseModel

from worker.base.text import encode_text

M = TypeVar("M", bound=BaseModel)


class TextWriter(Protocol):
    def write(self, text: str, /) -> object: ...


class Spool(Generic[M]):
    """Models kept in a temporary file (one JSON line each) until `replay()`."""

    def __init__(self, model: type[M]) -> None:
        self._model = model
        self._fh: IO[str] | None = None
        self.count = 0

    def add(self, item: M) -> None:
        if self._fh is None:
            # closed by replay(), or with the spool when it is dropped unreplayed
            self._fh = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._fh.write(item.model_dump_json() + "\n")
        self.count += 1

    def replay(self) -> Iterator[M]:
        """Every model added, in order; the spool is empty afterwards."""
        fh, self._fh, self.count = self._fh, None, 0
        if fh is None:
            return
        with fh:
            fh.seek(0)
            for line in fh:
                yield self._model.model_validate_json(line)


class EncodedText:
    """A text sink over a binary file: each string written as `encode_text` encodes it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, text: str) -> None:
        self._fh.write(encode_text(text))


class StreamedObject:
    """`{"a": [..., ...], "b": [...], <a model's fields>}` written as it goes.

    Open an array with `array(name)`, `add` its items, then `finish(model, exclude)` writes
    the model's remaining fields. Items are models (dumped as pydantic does) or JSON text
    (`add_json`). Members can come before the arrays too (`fields`, `value`), then `close()`.

    Compact (`validate --json`, `plan --json`): one line, `, ` between members and items.
    Indented (`indented=True`: the job report, the retry manifest): a member per line, two
    spaces in, an array's items four spaces in, one per line, as `json.dumps(indent=2)` would
    lay out the object's top level.
    """

    def __init__(self, out: TextWriter, *, indented: bool = False) -> None:
        self.out = out
        self._indented = indented
        self._members = 0
        self._items = -1
        out.write("{")

    def _member(self) -> None:
        if self._indented:
            self.out.write(",\n  " if self._members else "\n  ")
        elif self._members:
            self.out.write(", ")
        self._members += 1

    def array(self, name: str, items: Iterable[BaseModel] = ()) -> None:
        self._close_array()
        self._member()
        self.out.write(json.dumps(name) + ": [")
        self._items = 0
        for item in items:
            self.add(item)

    def add(self, item: BaseModel) -> None:
        self.add_json(item.model_dump_json())

    def add_json(self, text: str) -> None:
        """One item of the open array, already JSON text."""
        if self._indented:
            self.out.write(",\n    " if self._items else "\n    ")
        elif self._items:
            self.out.write(", ")
        self.out.write(text)
        self._items += 1

    def nested(self) -> StreamedObject:
        """An object as the next item of the open array, written by the writer returned."""
        assert not self._indented, "a nested object is written compact"
        self.out.write("" if not self._items else ", ")
        self._items += 1
        return StreamedObject(self.out)

    def fields(self, model: BaseModel, exclude: set[str] | None = None) -> None:
        """The model's fields but `exclude`, as members here (none: nothing is written)."""
        self._close_array()
        if self._indented:
            rest = model.model_dump_json(indent=2, exclude=exclude)
            if rest != "{}":
                self.out.write(("," if self._members else "") + rest[1:-2])
                self._members += 1
            return
        rest = model.model_dump_json(exclude=exclude)
        if rest != "{}":
            self._member()
            self.out.write(rest[1:-1])

    def value(self, name: str, value: object) -> None:
        """One member holding a plain JSON value."""
        self._close_array()
        self._member()
        self.out.write(f"{json.dumps(name)}: " + json.dumps(value, ensure_ascii=False))

    def close(self) -> None:
        self._close_array()
        self.out.write("\n}" if self._indented else "}")

    def finish(
        self, model: BaseModel, exclude: set[str], extra: dict[str, object] | None = None
    ) -> None:
        """The model's fields but `exclude`, then `extra` (plain JSON values), and the end."""
        self.fields(model, exclude)
        for name, value in (extra or {}).items():
            self.value(name, value)
        self.close()

    def _close_array(self) -> None:
        if self._items >= 0:
            self.out.write("\n  ]" if self._indented and self._items else "]")
            self._items = -1
