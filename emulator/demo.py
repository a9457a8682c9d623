"""`enroller demo`: the whole product in one command, on the embedded emulator.

Owns: the demonstration a newcomer runs first. It starts the emulator in this process on a
free port, writes sample audio and the manifests of `jobs/examples/` (plus one with deliberate
mistakes) into a fresh queue under `--dir`, runs the real worker with `--once` semantics and
prints a summary table and the report paths. This is the one module that joins the emulator
and the worker; the worker itself never imports the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio

from emulator.config import EmulatorOptions
from emulator.samples import write_audio
from emulator.server import EmulatorServer

DEMO_KEY = "demo-key"  # the seeded demo user's published API key
MARKER = ".enroller-demo"
# The example manifests: beside the source in a checkout (and an editable install); where an
# installed copy keeps them otherwise (the image puts them there, see the Dockerfile).
EXAMPLE_DIRS = (
    Path(__file__).resolve().parent.parent / "jobs" / "examples",
    Path(sys.prefix) / "share" / "voiceprint-enroller" / "examples",
)

# (path under the audio root, seconds of voice, seconds of silence, sample rate)
SAMPLE_AUDIO: list[tuple[str, float, float, int]] = [
    ("cust-0001/call-1.wav", 5.0, 0.5, 8000),
    ("cust-0001/call-2.flac", 5.25, 0.5, 8000),
    ("cust-0002/call-1.wav", 5.5, 0.5, 8000),
    ("cust-0002/call-2.wav", 5.75, 0.5, 8000),
    ("cust-0002/studio.ogg", 6.0, 0.5, 16000),
    ("cust-0003/call-1.wav", 6.25, 0.5, 8000),
    ("cust-0004/call-1.wav", 6.5, 0.5, 8000),
    ("cust-0004/call-2.wav", 6.75, 0.5, 8000),
    ("cust-0005/call-1.flac", 7.0, 0.5, 8000),
    ("cust-0006/call-1.wav", 7.25, 0.5, 8000),
    ("cust-0008/mostly-silence.wav", 1.0, 5.0, 8000),  # long enough, but too little voice
]

MISTAKES_CSV = """identity,audio,owner,space,note
cust-0006,cust-0006/call-1.wav,acme,onboarding,fine
Cust 7,cust-0006/call-1.wav,acme,onboarding,a handle with a capital and a space
cust-0008,cust-0008/mostly-silence.wav,acme,onboarding,too little voice: refused before upload
cust-0009,cust-0009/never-recorded.wav,acme,onboarding,the file does not exist
"""


def find_examples() -> Path:
    """The first folder of `EXAMPLE_DIRS` that holds manifests."""
    for folder in EXAMPLE_DIRS:
        if any(folder.glob("*.json")):
            return folder
    tried = ", ".join(str(f) for f in EXAMPLE_DIRS)
    raise SystemExit(f"enroller demo: no example manifests found (looked in {tried})")


def _prepare(root: Path) -> Path:
    """A fresh demo folder: the queue, its audio and the manifests in its inbox."""
    examples = find_examples()
    if root.exists():
        if not (root / MARKER).exists():
            raise SystemExit(f"enroller demo: {root} exists and is not a demo folder; use --dir")
        shutil.rmtree(root)
    queue = root / "queue"
    (queue / "inbox").mkdir(parents=True)
    (root / MARKER).write_text("made by `enroller demo`; deleted by the next run\n")
    for name, voice, silence, rate in SAMPLE_AUDIO:
        write_audio(queue / "audio" / name, voice_s=voice, silence_s=silence, samplerate=rate)
    manifests = {p.name: p.read_bytes() for p in sorted(examples.glob("*.json"))}
    manifests |= {p.name: p.read_bytes() for p in sorted(examples.glob("*.csv"))}
    manifests["with-mistakes.csv"] = MISTAKES_CSV.encode()
    for name, data in manifests.items():
        tmp = queue / "inbox" / f".{name}.tmp"  # the dropper contract: write, then rename
        tmp.write_bytes(data)
        os.replace(tmp, queue / "inbox" / name)
    return queue


def _print_summary(queue: Path) -> None:
    reports = sorted((queue / "reports").glob("*.report.json"))
    columns = ["manifest", "enrolled", "unchanged", "replaced", "kept", "failed", "conflict"]
    columns += ["skipped", "credits"]
    rows: list[list[str]] = []
    problems: list[str] = []
    for path in reports:
        doc: dict[str, Any] = json.loads(path.read_text())
        counts = doc["counts"]
        rows.append(
            [doc["manifest"]]
            + [str(counts.get(c, 0)) for c in columns[1:-1]]
            + [str(doc.get("credits_spent") if doc.get("credits_spent") is not None else "?")]
        )
        for row in doc["enrollments"]:
            if row.get("error"):
                err = row["error"]
                who = f" {row['identity']}" if row["identity"] else ""
                problems.append(f"  {doc['manifest']} {row['source']}{who}: {err['reason']}")
    for path in sorted((queue / "failed").glob("*.error.json")):
        doc = json.loads(path.read_text())
        rows.append([str(doc.get("file", path.name)), "-", "-", "rejected", "-", "-", "0"])
        problems.extend(f"  {p}" for p in doc.get("problems", []))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if problems:
        print("\nWhat went wrong (the with-mistakes.csv ones are deliberate):")
        print("\n".join(problems))
    print("\nReports:")
    for path in sorted((queue / "reports").iterdir()):
        print(f"  {path}")


async def run_demo(root: Path) -> int:
    from worker.api.client import ApiClient
    from worker.base.exitcodes import EXIT_FATAL
    from worker.base.log import configure_logging
    from worker.config.settings import Settings
    from worker.service import Service

    queue = _prepare(root)
    server = EmulatorServer(EmulatorOptions(port=0, state_file=None, config=None))
    await server.start()
    print(f"emulator listening on {server.base_url}")
    print(f"queue folder: {queue}  ({len(list((queue / 'inbox').iterdir()))} manifests in inbox/)")
    try:
        settings = Settings(
            api_url=server.base_url,
            api_key=DEMO_KEY,
            queue_dir=queue,
            min_age=0,
            rate_limit=50,
            burst=5,
            log_level="warning",
        )
        configure_logging(settings.log_level, "console", [DEMO_KEY])
        async with ApiClient.from_settings(settings) as client:
            code = await Service(settings, client).run(once=True)
    finally:
        await server.stop()
    if code == EXIT_FATAL:
        print("enroller demo: the worker could not run; see the messages above")
        return code
    _print_summary(queue)
    print(
        f"\nNext: look at a report, e.g. `cat {next(iter(sorted(queue.glob('reports/*.json'))))}`"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="enroller demo",
        description="Run sample manifests through the worker against an embedded emulator.",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("demo-run"), help="demo folder (default ./demo-run)"
    )
    args = parser.parse_args(argv)
    return anyio.run(run_demo, args.dir.resolve())
