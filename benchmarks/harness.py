"""Shared pieces of the end-to-end benchmarks: machine facts, audio, queue, worker process.

Owns: what every benchmark script does the same way — distinct small audio files made fast,
a manifest dropped by rename (the Maildir contract), the worker's environment, running
`python -m worker run` as a child process while sampling its peak RSS (VmHWM) and reading
its exact CPU time (`os.wait4`), and printing one JSON object. The emulator process itself
comes from `tests/emulator_harness.py` (one implementation for tests and benchmarks).

Never asserts a target: benchmarks measure and print; `docs/benchmarks.md` judges.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from emulator.samples import write_audio  # noqa: E402
from tests.emulator_harness import DEMO_KEY  # noqa: E402

OWNER, SPACE, MODEL = "demo", "main", "phone/v1"
# phone/v1 needs 4.5 s of voice per audio when minAudios is 1; 8 kHz keeps files at ~74 kB.
VOICE_S, SAMPLERATE = 4.6, 8000


def machine() -> dict[str, Any]:
    """What the figures were measured on; load matters on a shared 2-core machine."""
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def write_distinct_audio(directory: Path, n: int, prefix: str = "id", start: int = 0) -> list[str]:
    """`n` small WAV files that differ in content (their sha256 is the audio's alias).

    One file is encoded with `emulator.samples.write_audio`; the copies differ in their last
    two PCM samples only, which is far faster than encoding 50 000 files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    template_path = write_audio(directory / ".template.wav", VOICE_S, 0.0, SAMPLERATE)
    body = bytearray(template_path.read_bytes())
    template_path.unlink()
    frames = round(VOICE_S * SAMPLERATE)
    header = len(body) - 2 * frames
    if header < 12 or body[header - 8 : header - 4] != b"data":
        raise RuntimeError("unexpected WAV layout: the PCM data is not at the end of the file")
    names = []
    for i in range(start, start + n):
        body[-4:] = struct.pack("<I", i)
        name = f"{prefix}-{i:06d}.wav"
        (directory / name).write_bytes(body)
        names.append(name)
    return names


def identity_of(audio_name: str) -> str:
    return audio_name.removesuffix(".wav")


def job_manifest(audio_names: list[str]) -> dict[str, Any]:
    return {
        "model": MODEL,
        "enrollments": [{"identity": identity_of(a), "audios": [a]} for a in audio_names],
    }


def drop_manifest(queue: Path, name: str, document: object) -> float:
    """Write under a dot-name, then rename into inbox/. Returns the rename's wall time."""
    inbox = queue / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{name}.tmp"
    tmp.write_text(json.dumps(document))
    at = time.time()
    os.rename(tmp, inbox / name)
    return at


def worker_env(queue: Path, base_url: str, rate_limit: float, **extra: Any) -> dict[str, str]:
    """The worker's environment: only ENROLLER_* set here count (the caller's are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
    env.update(
        ENROLLER_API_URL=base_url,
        ENROLLER_API_KEY=DEMO_KEY,
        ENROLLER_OWNER=OWNER,
        ENROLLER_SPACE=SPACE,
        ENROLLER_QUEUE_DIR=str(queue),
        ENROLLER_MIN_AGE="0",
        ENROLLER_RATE_LIMIT=str(rate_limit),
        ENROLLER_LOG_FORMAT="json",
    )
    env.update({f"ENROLLER_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def vm_hwm_kib(pid: int) -> int:
    """A process's peak RSS so far (KiB), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children, grandchildren…), from the ppid in
    /proc/*/stat: this kernel has no /proc/<pid>/task/*/children, and psutil is not a
    dependency."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after ")"
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class ChildrenPeak:
    """The peak of the summed VmHWM of a process's live descendants (KiB).

    Each descendant's VmHWM is its own peak so far; their sum, at its largest over the run, is
    a conservative figure for what the children held at once (pages a forked child shares with
    its parent count in both). A child that exits keeps its last sampled VmHWM in the sums
    taken while it lived; children that follow each other are not added together.
    """

    RESCAN_S = 0.25  # how often /proc is walked for new descendants

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._hwm: dict[int, int] = {}  # live descendant -> its VmHWM so far
        self._scanned = 0.0

    def sample(self) -> int:
        """Read the descendants' VmHWM now; returns their current sum (KiB)."""
        now = time.monotonic()
        if now - self._scanned >= self.RESCAN_S:
            self._scanned = now
            live = set(descendants(self.pid))
            self._hwm = {p: self._hwm.get(p, 0) for p in live}
        for child, before in self._hwm.items():
            # 0 once it is gone: it keeps its last value until the next walk drops it
            self._hwm[child] = max(before, vm_hwm_kib(child))
        total = sum(self._hwm.values())
        self.peak_kib = max(self.peak_kib, total)
        return total


@dataclass
class WorkerRun:
    """One finished worker process: exit code, wall time, CPU time, peak RSS."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    started_at: float  # wall clock (epoch s)
    stderr_path: Path
    rss_samples_mb: list[float] = field(default_factory=list)
    # the summed VmHWM of the worker's descendants at its largest (0 without children)
    children_peak_rss_mb: float = 0.0


class WorkerProcess:
    """`python -m worker run [--once]` as a child; sampled for VmHWM until it is reaped, and
    so are its own children (`children_peak_rss_mb`).

    `python_args` go between the interpreter and `-m worker` (e.g. `-m memray run -o X`).
    """

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        *,
        once: bool,
        stderr_path: Path,
        python_args: Sequence[str] = (),
    ) -> None:
        self.env, self.cwd, self.once, self.stderr_path = env, cwd, once, stderr_path
        self.python_args = list(python_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.children: ChildrenPeak | None = None
        self._peak_kib = 0
        self._started = 0.0
        self._started_wall = 0.0
        self._done = threading.Event()

    def start(self) -> None:
        argv = [sys.executable, *self.python_args, "-m", "worker", "run"]
        argv += ["--once"] if self.once else []
        with self.stderr_path.open("ab") as err:
            self._started = time.monotonic()
            self._started_wall = time.time()
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=err
            )
        self.children = ChildrenPeak(self.proc.pid)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        assert self.proc is not None and self.children is not None
        while not self._done.wait(0.05):
            self._peak_kib = max(self._peak_kib, vm_hwm_kib(self.proc.pid))
            self.children.sample()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> WorkerRun:
        """Block until the child exits; its own rusage comes from wait4 (exact, no siblings)."""
        assert self.proc is not None
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.monotonic() - self._started
        self._done.set()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        peak_kib = max(self._peak_kib, usage.ru_maxrss)  # ru_maxrss is KiB on Linux
        return WorkerRun(
            returncode=self.proc.returncode,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=round(peak_kib / 1024, 1),
            started_at=self._started_wall,
            stderr_path=self.stderr_path,
            children_peak_rss_mb=round(self.children.peak_kib / 1024, 1) if self.children else 0.0,
        )


def run_worker_once(env: dict[str, str], cwd: Path, stderr_path: Path) -> WorkerRun:
    """Run `enroller run --once` to its exit (blocking; call via a thread from async code)."""
    worker = WorkerProcess(env, cwd, once=True, stderr_path=stderr_path)
    worker.start()
    return worker.wait()


def stderr_tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def read_report(queue: Path) -> dict[str, Any] | None:
    reports = sorted((queue / "reports").glob("*.report.json"))
    return json.loads(reports[-1].read_text()) if reports else None


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object."""
    print(json.dumps(result, indent=2))
