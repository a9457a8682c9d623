"""`enroller emulator`: placeholder until the emulator lands."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    print("emulator: not available in this build yet")
    return 2
