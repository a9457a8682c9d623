"""The API key file: read safely at start, and judged for who else can read it.

Owns: reading `ENROLLER_API_KEY_FILE` (container secrets). Opened non-blocking and checked to be
a regular file, so a FIFO or device named by mistake cannot hang the start; symlinks are
followed (Kubernetes mounts secrets through them). Its permission bits feed an ssh-like warning.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from worker.base.errors import WorkerMustStop

KEY_FILE_MAX_BYTES = 64 * 1024  # an API key is short; anything bigger is the wrong file


class KeyFileProblem(WorkerMustStop):  # not a ValueError: pydantic lets it out of a validator as is
    """The key file cannot give a key; `rule` says why (its path, never its content)."""

    def __init__(self, rule: str, setting: str = "api_key_file") -> None:
        super().__init__(f"invalid setting {setting}: {rule}")
        self.rule = rule


def read_key_file(path: Path, setting: str = "api_key_file") -> tuple[str, int]:
    """The key in `path` and the file's permission bits, or `KeyFileProblem` saying why not.

    `setting` names the file's setting in the problem (the web token's file reads the same way).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileProblem(
            setting=setting, rule=f"{path} cannot be read ({exc.strerror})"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileProblem(setting=setting, rule=f"{path} is not a regular file")
        data = b""
        while len(data) <= KEY_FILE_MAX_BYTES and (chunk := os.read(fd, KEY_FILE_MAX_BYTES + 1)):
            data += chunk
    except OSError as exc:
        raise KeyFileProblem(
            setting=setting, rule=f"{path} cannot be read ({exc.strerror})"
        ) from None
    finally:
        os.close(fd)
    if len(data) > KEY_FILE_MAX_BYTES:
        raise KeyFileProblem(
            setting=setting, rule=f"{path} is larger than {KEY_FILE_MAX_BYTES} bytes"
        )
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileProblem(setting=setting, rule=f"{path} is not UTF-8 text") from None
    if not key:
        raise KeyFileProblem(setting=setting, rule=f"{path} is empty")
    return key, stat.S_IMODE(info.st_mode)


def too_open_warning(path: Path, mode: int) -> str | None:
    """The warning when group or others can read the key file (ssh refuses such keys)."""
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"api_key_file {path} can be read by group or others "
        f"(mode {mode:04o}): chmod 600 it, or mount the secret with mode 0400"
    )
