"""The audio steps of one enrollment: find, create (inline or not) and upload one file's audio.

Owns: the file's `AudioLocks` lock, held across find → create → upload of one audio so that
voiceprints of one identity sharing a file get one audio, uploaded once; what the process
learned about that audio; the journal records of audio effects (an intent before a create, the
handle and the upload once they happened); and derived files (made again if needed, discarded
once uploaded); forgetting an audio the server lost. Called by the driver (`driver.py`), which
owns the loop; what to do next is the rules' (`rules.decide`).
"""

from __future__ import annotations

import contextlib

import anyio
import anyio.to_thread
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.audio.derive import DerivedUpload
from worker.enrollment import collisions
from worker.enrollment.actions import Action, CreateAudio, FindAudio, UploadFile
from worker.enrollment.locks import AudioLocks
from worker.enrollment.observe import Observation, SawAudio
from worker.enrollment.reads import Reads, audio_seen
from worker.enrollment.task import EnrollmentTask, audio_alias
from worker.enrollment.view import ABSENT, Absent, AudioSeen
from worker.journal.records import (
    AudioCreated,
    AudioDerived,
    AudioIntent,
    AudioUploaded,
    EnrollmentMemory,
    Step,
)
from worker.journal.writer import Journal

log = structlog.get_logger(__name__)

AUDIO_ACTIONS = (FindAudio, CreateAudio, UploadFile)  # done under the file's AudioLocks lock


def explained(step: Step, explanation: collisions.Explained) -> list[Observation]:
    """Log which collision a 409 was; the observations go on to the rules."""
    name, observations = explanation
    log.info("enrollment_conflict", step=step.value, collision=name)
    return observations


class AudioWork:
    """The audio side of one enrollment's driver."""

    def __init__(
        self,
        task: EnrollmentTask,
        client: ApiClient,
        journal: Journal,
        memory: EnrollmentMemory,
        reads: Reads,
        locks: AudioLocks,
        inline_max_bytes: int,
    ) -> None:
        self.task = task
        self.client = client
        self.journal = journal
        self.memory = memory
        self.reads = reads
        self.audio_locks = locks
        self.inline_max_bytes = inline_max_bytes
        self._files = {f.sha256: f for f in task.files}
        self._derived = {d.upload.sha256: d for d in task.derived}
        self._guarded: str | None = None  # the sha256 whose AudioLocks lock we hold
        self._guard = contextlib.AsyncExitStack()

    async def hold_for(self, action: Action) -> None:
        """Hold the file's lock across find → create → upload of one audio; nothing else."""
        sha = action.sha if isinstance(action, AUDIO_ACTIONS) else None
        if sha == self._guarded:
            return
        await self._guard.aclose()
        self._guard = contextlib.AsyncExitStack()
        self._guarded = None
        if sha is not None:
            await self._guard.enter_async_context(self.audio_locks.hold(self.audio_key(sha)))
            self._guarded = sha

    def audio_key(self, sha: str) -> str:
        t = self.task  # the API too: a process (a test run) may talk to more than one
        return f"{self.client.base_url} {t.owner}/{t.space}/{t.identity}/{sha}"

    async def release(self) -> None:
        await self._guard.aclose()
        self._guarded = None

    async def find(self, sha: str) -> list[Observation]:
        known = self.audio_locks.known(self.audio_key(sha))
        if known is not None:  # another enrollment of this process made it
            return [await self._adopt(sha, known)]
        return [SawAudio(sha, await self._find_audio(sha))]

    async def create(self, sha: str) -> list[Observation]:
        known = self.audio_locks.known(self.audio_key(sha))
        if known is not None:  # shared file: made (under this lock) by another
            return [await self._adopt(sha, known)]
        return await self._create_audio(sha)

    def forget(self, sha: str, handle: str) -> None:
        """The server no longer has audio `handle` made from this file (restored from a backup,
        deleted): the process table and the journal's memory stop handing it out.

        Both may remember a handle for days; without this, every later enrollment of the same
        file would fail on it until the worker restarts.
        """
        self.audio_locks.forget(self.audio_key(sha), handle)
        if self.memory.audios.get(sha) == handle:
            del self.memory.audios[sha]
        log.warning("audio_lost_by_server", audio=handle, sha256=sha[:12])

    def file_name(self, sha: str) -> str:
        """The file as a person knows it: a derived copy by its source and what was done."""
        if (derived := self._derived.get(sha)) is not None:
            return f"{derived.name} ({derived.derivation.describe()})"
        return self._files[sha].path.name

    async def _create_audio(self, sha: str) -> list[Observation]:
        """Create the file's audio: with its bytes inline when small enough (one request)."""
        t = self.task
        upload = self._files[sha]
        inline = upload.size <= self.inline_max_bytes
        derived = self._derived.get(sha)
        # A derived file's alias is tied to its source before the server sees it.
        records = [_derived_record(t.key, derived)] if derived is not None else []
        await self.journal.append(*records, AudioIntent(key=t.key, sha256=sha))
        if inline and derived is not None:
            await anyio.to_thread.run_sync(derived.ensure)  # made again after a restart
        audio = await self.client.create_audio(
            t.owner,
            t.space,
            alias=audio_alias(sha),
            identity=t.identity,
            file=upload if inline else None,
        )
        self.memory.audios[sha] = audio.handle
        created = AudioCreated(key=t.key, sha256=sha, audio=audio.handle)
        if inline:
            await self.journal.append(
                created, AudioUploaded(key=t.key, sha256=sha, audio=audio.handle)
            )
            if derived is not None:
                await anyio.to_thread.run_sync(derived.discard)  # confirmed: not needed again
        else:
            await self.journal.append(created)
        return [self.learn(sha, audio_seen(audio, received=inline))]

    async def upload(self, sha: str, handle: str) -> list[Observation]:
        t = self.task
        if (derived := self._derived.get(sha)) is not None:
            await anyio.to_thread.run_sync(derived.ensure)  # made again after a restart
        try:
            audio = await self.client.upload_audio_file(t.owner, t.space, handle, self._files[sha])
        except errors.Conflict:
            read = await self.reads.audio(handle)
            observations = explained(Step.UPLOAD, collisions.after_upload(sha, read))
            if isinstance(read, AudioSeen):  # it exists and refused a file: it has one
                await self._uploaded(sha, handle)
                for obs in observations:
                    if isinstance(obs, SawAudio) and isinstance(obs.audio, AudioSeen):
                        self.learn(sha, obs.audio)
            return observations
        await self._uploaded(sha, handle)
        return [self.learn(sha, audio_seen(audio, received=True))]

    async def _uploaded(self, sha: str, handle: str) -> None:
        await self.journal.append(AudioUploaded(key=self.task.key, sha256=sha, audio=handle))
        if (derived := self._derived.get(sha)) is not None:
            await anyio.to_thread.run_sync(derived.discard)  # confirmed: not needed again

    def learn(self, sha: str, audio: AudioSeen) -> SawAudio:
        """Tell the process what this file's audio is now, and the rules too."""
        self.audio_locks.learn(self.audio_key(sha), audio)
        return SawAudio(sha, audio)

    async def _adopt(self, sha: str, known: AudioSeen) -> SawAudio:
        """Use the audio another enrollment of this process made from the same file."""
        if self.memory.audios.get(sha) != known.handle:
            self.memory.audios[sha] = known.handle
            await self.journal.append(
                AudioCreated(key=self.task.key, sha256=sha, audio=known.handle)
            )
        return SawAudio(sha, known)

    async def _find_audio(self, sha: str) -> AudioSeen | Absent:
        """The audio already made from this file: by the journal's handle, else by alias."""
        t = self.task
        known = self.memory.audios.get(sha)
        received = sha in self.memory.uploaded
        if known is not None:
            try:
                audio = await self.client.get_audio(t.owner, t.space, known)
                return self.learn(sha, audio_seen(audio, received)).audio
            except errors.NotFound:
                pass
        found = await self.client.find_audios_by_alias(t.owner, t.space, audio_alias(sha))
        ours = [a for a in found if a.identity is None or a.identity.handle == t.identity]
        if not ours:
            return ABSENT
        # Prefer one that already has its file; then the oldest (the first one created).
        ours.sort(key=lambda a: (a.state.value != "available", a.uploaded_at is None))
        self.memory.audios[sha] = ours[0].handle
        return self.learn(sha, audio_seen(ours[0])).audio


def _derived_record(key: str, derived: DerivedUpload) -> AudioDerived:
    """The journal's word on a derived file, written before the first request using its alias."""
    return AudioDerived(
        key=key,
        derivation=derived.derivation.key,
        sha256=derived.upload.sha256,
        size=derived.upload.size,
    )
