"""A live progress bar per job for people at a terminal (rich).

Owns: the terminal display only. It reads the job's own `_Progress` object (handed over by
`worker.job.run` through the `JobObserver` hooks), so the bar, `progress.json` and the
`job_progress` log lines all show one state. Off a terminal it is not used: `worker.job.run` logs
`job_progress` every few seconds instead, which suits log collectors. While the bar shows, those
lines are silenced (they would repeat the bar) and every other log line is printed above the bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from worker.base.log import quiet_events

if TYPE_CHECKING:
    from worker.job.run import JobResult


class RateColumn(ProgressColumn):
    """Enrollments per second over rich's recent window (the overall rate once finished)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("–/s", style="progress.data.speed")
        return Text(f"{speed:.1f}/s", style="progress.data.speed")


class StepsColumn(ProgressColumn):
    """The steps done in this start (`JobProgress.steps`), read live at each refresh: a job
    whose uploads are under way shows them before its first enrollment finishes."""

    def render(self, task: Task) -> Text:
        state = task.fields.get("state")
        steps = state.steps() if hasattr(state, "steps") else {}
        told = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in steps.items())
        return Text(told, style="progress.data.speed")


class ProgressDisplay:
    """One bar per job: description, bar, done/total, steps, rate, elapsed, ETA. A
    `JobObserver`."""

    def __init__(self, console: Console | None = None, *, refresh_per_second: float = 4) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            StepsColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=refresh_per_second,
        )
        self._jobs: dict[str, tuple[TaskID, Any]] = {}

    def start(self) -> None:
        quiet_events("job_progress")
        self.progress.start()

    def stop(self) -> None:
        self.refresh()
        self.progress.stop()
        quiet_events("job_progress", quiet=False)

    def refresh(self) -> None:
        """Copy each running job's counts into its bar (cheap; called on every outcome)."""
        for task_id, state in list(self._jobs.values()):
            self.progress.update(task_id, completed=state.done, total=state.total)

    # --- JobObserver ------------------------------------------------------------------------

    def job_started(self, job_id: str, name: str, progress: Any) -> None:
        if job_id in self._jobs:
            return
        task_id = self.progress.add_task(
            job_id, total=progress.total or None, completed=progress.done, state=progress
        )
        self._jobs[job_id] = (task_id, progress)

    def enrollment_finished(self, outcome: str) -> None:
        self.refresh()

    def job_ended(self, result: JobResult) -> None:
        entry = self._jobs.pop(result.job_id, None)
        if entry is None:
            return  # rejected before it started: the log says why
        task_id, state = entry
        mark = "[green]✓" if not result.interrupted else "[yellow]…"
        counts = " ".join(f"{k}={v}" for k, v in sorted(result.counts.items()))
        self.progress.update(
            task_id,
            completed=state.done,
            description=f"{mark} {result.job_id}[/] {counts}".rstrip(),
        )
        self.progress.stop_task(task_id)
