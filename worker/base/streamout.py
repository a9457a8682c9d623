"""Writing a result whose lists are too long to hold: JSON arrays written as their items come,
and lines kept on disk until their turn.

Owns: `StreamedObject` (a JSON object whose first members are arrays written item by item, the
rest dumped from a model once known: the document stays valid whatever the count) and `Spool`
(problems parked in a temporary file, replayed in order: warnings are printed after a file's
problems, yet a million of them must not sit in memory). It knows nothing of manifests.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Generic, TextIO, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


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


class StreamedObject:
    """`{"a": [..., ...], "b": [...], <the model's other fields>}` written as it goes.

    Open an array with `array(name)`, `add` its items, then `finish(model, exclude)` writes
    the model's remaining fields. Items are models (dumped as pydantic does) or plain values.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._members = 0
        self._items = -1
        out.write("{")

    def array(self, name: str, items: Iterable[BaseModel] = ()) -> None:
        self._close_array()
        self.out.write(("" if not self._members else ", ") + json.dumps(name) + ": [")
        self._members += 1
        self._items = 0
        for item in items:
            self.add(item)

    def add(self, item: BaseModel) -> None:
        self.out.write(("" if not self._items else ", ") + item.model_dump_json())
        self._items += 1

    def nested(self) -> StreamedObject:
        """An object as the next item of the open array, written by the writer returned."""
        self.out.write("" if not self._items else ", ")
        self._items += 1
        return StreamedObject(self.out)

    def finish(
        self, model: BaseModel, exclude: set[str], extra: dict[str, object] | None = None
    ) -> None:
        """The model's fields but `exclude`, then `extra` (plain JSON values), and the end."""
        self._close_array()
        rest = model.model_dump_json(exclude=exclude)
        if rest != "{}":
            self.out.write((", " if self._members else "") + rest[1:-1])
            self._members += 1
        for name, value in (extra or {}).items():
            self.out.write((", " if self._members else "") + f"{json.dumps(name)}: ")
            self.out.write(json.dumps(value, ensure_ascii=False))
            self._members += 1
        self.out.write("}")

    def _close_array(self) -> None:
        if self._items >= 0:
            self.out.write("]")
            self._items = -1
