"""`enroller check [PATH…]`: the online preflight. Reads only; never creates, uploads or computes.

Owns: asking the API, before a run, what only it can tell: that the key works (`GET /user`),
that each owner/space the manifests (or the settings) name is reachable with it (a one-item
list read of its identities: 403 when the owner is neither the caller nor one of its orgs, 404
when there is no such space), that each model they ask for exists (`GET /models`, which the
emulator serves; the vendor's reference lists none, so a 404 there leaves the worker's own table
as the judge), and, where the API tells (`GET /owners/{owner}/credits`, a read of ours that the
emulator serves), the credits left against what the plan needs (`worker.commands.plan`).

One line per finding, `ok` or `FAIL`; exit 0 when every finding is ok, 1 otherwise, 2 when the
settings hold no credentials. The key is never printed: findings quote the API's messages,
which the client's redactor has seen, never a header. It holds no state and writes nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

import anyio
from pydantic import BaseModel, Field, computed_field

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import User
from worker.audio.inspect import DEFAULT_MODEL, MODELS
from worker.base.exitcodes import EXIT_FAILURES, EXIT_FATAL, EXIT_OK
from worker.base.masking import mask_url_userinfo
from worker.commands.check_migration import identities_page, migration_count
from worker.commands.check_objects import ObjectFinding, manifest_objects, object_findings
from worker.commands.plan import plan_paths
from worker.commands.plan_models import MigrateAll, PlanResult
from worker.config.described import api_url_version_hint
from worker.config.settings import Settings
from worker.job.objects import store_from_settings
from worker.manifest.models import ManifestDefaults, Problem

# A check is a quick look, not a run: fail fast instead of the worker's patient retries.
CHECK_MAX_RETRIES = 1
CHECK_RETRY_MAX_TIME = 10.0


class Finding(BaseModel):
    """One thing checked: what, whether it is fine, and why."""

    subject: str  # "key", "space acme/onboarding", "model phone/v1", "credits acme"
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.subject}: {self.message}"


class CheckResult(BaseModel):
    """The outcome of `enroller check`, as `--json` prints it."""

    api_url: str  # user-info masked
    findings: list[Finding] = Field(default_factory=list)
    rejected_enrollments: int = 0  # rows the local preflight already rejects: not ok either

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings) and not self.rejected_enrollments


# --- what the manifests ask for (local, pure over the plan) ------------------------------------


class Wanted(BaseModel):
    """What the API must offer for these manifests to run."""

    spaces: list[str] = Field(default_factory=list)  # "owner/space"
    models: list[str] = Field(default_factory=list)
    credits_by_owner: dict[str, int] = Field(default_factory=dict)
    enrollments: int = 0  # what the manifests name (0: no manifest given)
    rejected: int = 0  # of those, rejected by local preflight
    migrate_all: list[MigrateAll] = Field(default_factory=list)  # counted here, not offline


def _unknown_models(problems: Iterable[Problem]) -> set[str]:
    """Models a manifest names that the worker's own table does not know: the API may."""
    found = set()
    for p in problems:
        if p.field == "model" and p.value and p.reason.startswith("unknown model"):
            try:
                value = json.loads(p.value)
            except ValueError:
                continue
            if isinstance(value, str):
                found.add(value)
    return found


def wanted_from(
    plan: PlanResult | None, settings: Settings, unknown_models: Iterable[str] = ()
) -> Wanted:
    """Spaces, models and credits from the plan of the manifests, plus the settings' space.

    `unknown_models`: models the manifests name that the worker's table does not know, when
    the plan did not keep its problems (`plan_for_check`).
    """
    spaces: set[str] = set()
    models: set[str] = set()
    credits: dict[str, int] = {}
    if settings.owner and settings.space:
        spaces.add(f"{settings.owner}/{settings.space}")
    if plan is not None:
        for f in plan.files:
            spaces.update(f.spaces)
            models.update(f.models)
            models.update(_unknown_models(f.problems))
        models.update(unknown_models)
        credits = dict(plan.totals.credits_by_owner)
    if not models:
        models.add(DEFAULT_MODEL)
    return Wanted(
        spaces=sorted(spaces),
        models=sorted(models),
        credits_by_owner=credits,
        enrollments=plan.totals.enrollments if plan is not None else 0,
        rejected=plan.totals.rejected if plan is not None else 0,
        migrate_all=[f.migrate_all for f in plan.files if f.migrate_all] if plan else [],
    )


def plan_for_check(
    paths: Sequence[str], defaults: ManifestDefaults, rate_limit: float
) -> tuple[PlanResult, set[str]]:
    """The plan of the manifests, keeping of their problems only the unknown models they name
    (a manifest of a million bad rows costs the memory of one)."""
    unknown: set[str] = set()
    plan = plan_paths(
        paths, defaults, rate_limit, emit=lambda p: unknown.update(_unknown_models([p]))
    )
    return plan, unknown


# --- the reads --------------------------------------------------------------------------------


def _reason(exc: errors.ApiError) -> str:
    return str(exc)


async def _check_key(client: ApiClient, api_url: str) -> tuple[Finding, User | None]:
    try:
        user = await client.get_user()
    except errors.Unauthorized as exc:
        return Finding(subject="key", ok=False, message=f"refused by the API: {exc}"), None
    except errors.NotFound as exc:
        message = f"the server has no GET /user ({exc}){api_url_version_hint(api_url)}"
        return Finding(subject="key", ok=False, message=message), None
    except errors.ApiError as exc:
        return Finding(subject="key", ok=False, message=f"cannot reach the API: {exc}"), None
    orgs = ", ".join(user.orgs) if user.orgs else "none"
    return Finding(
        subject="key", ok=True, message=f"works: user {user.handle} (orgs: {orgs})"
    ), user


async def _check_space(client: ApiClient, user: User, target: str) -> Finding:
    owner, space = target.split("/", 1)
    subject = f"space {target}"
    try:
        page = await identities_page(client, owner, space)
    except errors.Forbidden as exc:
        orgs = ", ".join(user.orgs) or "none"
        why = f"{owner} is neither you ({user.handle}) nor one of your orgs ({orgs})"
        return Finding(subject=subject, ok=False, message=f"access denied: {why} ({exc})")
    except errors.NotFound:
        return Finding(subject=subject, ok=False, message=f"no such space in owner {owner}")
    except errors.ApiError as exc:
        return Finding(subject=subject, ok=False, message=_reason(exc))
    count = f"{page.item_total} identities" if page.item_total is not None else "readable"
    return Finding(subject=subject, ok=True, message=f"reachable ({count})")


async def _check_models(client: ApiClient, wanted: Sequence[str]) -> list[Finding]:
    try:
        served = {m.name: m for m in await client.list_models()}
    except errors.NotFound:
        # The vendor's reference lists no models: the worker's own table is all there is.
        return [
            Finding(
                subject=f"model {m}",
                ok=m in MODELS,
                message="known to this worker (the API lists no models)"
                if m in MODELS
                else "unknown to this worker, and the API lists no models to say otherwise",
            )
            for m in wanted
        ]
    except errors.ApiError as exc:
        return [Finding(subject="models", ok=False, message=_reason(exc))]
    findings = []
    for name in wanted:
        subject = f"model {name}"
        model = served.get(name)
        if model is None:
            known = ", ".join(sorted(served)) or "none"
            findings.append(
                Finding(subject=subject, ok=False, message=f"the API has no such model ({known})")
            )
        elif name not in MODELS:
            findings.append(
                Finding(
                    subject=subject,
                    ok=False,
                    message="the API has it, this worker's model table does not: its rows are "
                    "rejected by preflight until worker/audio/inspect.py MODELS knows it",
                )
            )
        else:
            note = ", deprecated" if model.deprecated else ""
            findings.append(Finding(subject=subject, ok=True, message=f"exists{note}"))
    return findings


async def _check_credits(client: ApiClient, owner: str, needed: int) -> Finding:
    subject = f"credits {owner}"
    try:
        credits = await client.get_credits(owner)
    except (errors.NotFound, errors.BadRequest):
        return Finding(
            subject=subject,
            ok=True,
            message=f"the API tells no balance (not checked); the plan needs {needed}",
        )
    except errors.ApiError as exc:
        return Finding(subject=subject, ok=False, message=_reason(exc))
    if credits.left is None:
        return Finding(subject=subject, ok=True, message=f"unlimited; the plan needs {needed}")
    if credits.left < needed:
        return Finding(
            subject=subject,
            ok=False,
            message=f"{credits.left} left, the plan needs {needed}: "
            f"{needed - credits.left} computes would be refused",
        )
    return Finding(
        subject=subject, ok=True, message=f"{credits.left} left, the plan needs {needed}"
    )


async def check(settings: Settings, wanted: Wanted) -> CheckResult:
    """Every read, in order: key first (nothing else can work without it)."""
    result = CheckResult(api_url=mask_url_userinfo(settings.api_url))
    quick = settings.model_copy(
        update={"max_retries": CHECK_MAX_RETRIES, "retry_max_time": CHECK_RETRY_MAX_TIME}
    )
    async with ApiClient.from_settings(quick) as client:
        client.pause.stops_requests = True  # a one-shot command never waits days: it says so
        key, user = await _check_key(client, settings.api_url)
        result.findings.append(key)
        if user is None:
            return result
        if not wanted.spaces:
            result.findings.append(_no_space(wanted))
        for target in wanted.spaces:
            result.findings.append(await _check_space(client, user, target))
        result.findings.extend(await _check_models(client, wanted.models))
        for migration in wanted.migrate_all:  # its identities count only now: credits too
            ok, message, credits = await migration_count(client, migration, settings.rate_limit)
            result.findings.append(
                Finding(subject=f"migration {migration.space}", ok=ok, message=message)
            )
            owner = migration.space.split("/", 1)[0]
            wanted.credits_by_owner[owner] = wanted.credits_by_owner.get(owner, 0) + credits
        owners = sorted({s.split("/", 1)[0] for s in wanted.spaces} | set(wanted.credits_by_owner))
        for owner in owners:
            if owner == user.handle or owner in user.orgs:
                needed = wanted.credits_by_owner.get(owner, 0)
                result.findings.append(await _check_credits(client, owner, needed))
    return result


def s3_findings(settings: Settings, paths: Sequence[str]) -> list[ObjectFinding]:
    """`check_objects` over the manifests, with an S3 client only when one names an object."""
    defaults = ManifestDefaults.from_settings(settings)
    if next(manifest_objects(paths, defaults), None) is None:
        return []
    store = store_from_settings(settings)
    try:
        return object_findings(paths, defaults, store, settings.s3_max_object_bytes)
    finally:
        store.close()


def _no_space(wanted: Wanted) -> Finding:
    """Why no space is checked: every row rejected locally is not "nothing to check"."""
    if wanted.enrollments and wanted.rejected == wanted.enrollments:
        return Finding(
            subject="manifests",
            ok=False,
            message=(
                f"all {wanted.enrollments} enrollments are"
                if wanted.enrollments > 1
                else "the one enrollment is"
            )
            + " rejected by preflight, so no space is left to check (enroller validate says why)",
        )
    return Finding(
        subject="spaces",
        ok=False,
        message="none to check: name manifests, or set ENROLLER_OWNER and ENROLLER_SPACE",
    )


def _verdict(result: CheckResult, plan: PlanResult | None) -> str:
    """The last line: "all checks passed" only when nothing, online or local, is wrong."""
    bad = sum(not f.ok for f in result.findings)
    rejected, total = (plan.totals.rejected, plan.totals.enrollments) if plan else (0, 0)
    if bad:
        return f"{bad} of {len(result.findings)} checks failed"
    if rejected:
        return (
            f"the API checks passed, but {rejected} of {total} enrollments "
            "are rejected by preflight and will fail with no request (enroller validate says why)"
        )
    if plan is not None and plan.errors:
        return f"the API checks passed, but {len(plan.errors)} manifest problems are above"
    return "all checks passed"


def render_text(result: CheckResult, plan: PlanResult | None) -> Iterator[str]:
    if plan is not None:
        for problem in plan.errors:
            yield str(problem)
        t = plan.totals
        yield (
            f"plan: {t.runnable} of {t.enrollments} enrollments to run, {t.requests} requests, "
            f"{t.credits} credits (enroller plan for the details)"
        )
    yield f"api {result.api_url}"
    for finding in result.findings:
        yield finding.line()
    yield _verdict(result, plan)


def run_check(
    settings: Settings, paths: Sequence[str], as_json: bool, out: TextIO | None = None
) -> int:
    """`enroller check`: 0 when every finding is ok, 1 otherwise."""
    stream = out if out is not None else sys.stdout
    if settings.api_key is None and not (settings.api_handle and settings.api_password):
        print(
            "enroller: check needs credentials: set ENROLLER_API_KEY (or ENROLLER_API_KEY_FILE), "
            "or ENROLLER_API_HANDLE and ENROLLER_API_PASSWORD",
            file=sys.stderr,
        )
        return EXIT_FATAL
    plan, unknown = None, set()
    if paths:  # local and blocking, before the event loop starts
        defaults = ManifestDefaults.from_settings(settings)
        plan, unknown = plan_for_check(paths, defaults, settings.rate_limit)
    result = anyio.run(check, settings, wanted_from(plan, settings, unknown))
    result.rejected_enrollments = plan.totals.rejected if plan is not None else 0
    if paths:  # the S3 objects the manifests name, by HEAD (none: no S3 client is made)
        result.findings.extend(
            Finding(subject=s, ok=ok, message=m) for s, ok, m in s3_findings(settings, paths)
        )
    if as_json:
        stream.write(result.model_dump_json(indent=2) + "\n")
    else:
        for line in render_text(result, plan):
            stream.write(line + "\n")
    local_ok = plan is None or not (plan.errors or plan.totals.rejected)
    return EXIT_OK if result.ok and local_ok else EXIT_FAILURES
