"""The status page's routes: the overview, the jobs, one job, its downloads, and the login.

Owns: the handlers of `enroller web` and what each renders (templates in `web_templates/`,
the refresh script and the style sheet in `web_static/`). Every page is rendered on the
server, whole, so it works with JavaScript off; with it on, `refresh.js` fetches the same
URL with `?part=live` every few seconds and swaps in the server-rendered live region: no page
reload, no HTML assembled in the browser or here. `/api/*.json` give the same data to scripts.
Files are served only by name from fixed lists (the static files, a job's three report
files under an id that `JOB_ID_RE` accepts), so no request can name a path.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from worker.commands.web_data import (
    active_jobs,
    chart,
    failed_manifests,
    finished_jobs,
    job_detail,
    overview,
)
from worker.commands.web_failures import failure_page, journal_failure_page
from worker.commands.web_guard import (
    COOKIE,
    HERE,
    LOGIN_PATH,
    SETTINGS_KEY,
    TOKEN_KEY,
    session_value,
)
from worker.config.settings import Settings
from worker.job.report import needs_action
from worker.ops.status import read_fleet
from worker.queue.paths import JOURNAL_NAME, QueuePaths

REFRESH_S = 3  # seconds between refreshes of the live region
STATIC = {  # the only files served from the package: name -> content type
    "refresh.js": "text/javascript",
    "style.css": "text/css",
}
DOWNLOADS = {  # a job's files, by the name in the URL
    "report": ("report", "application/json"),
    "failures": ("failures", "text/csv"),
    "retry": ("retry", "application/json"),
}
FLEET_WAIT_S = 3.0  # Redis's answer for the fleet, at most
QUERY_MAX = 200  # characters of a failures filter
AT_MAX = 1 << 50  # a byte offset beyond any file


def _context(request: web.Request, page: str, **data: Any) -> dict[str, Any]:
    live = request.query.get("part") == "live"
    return {
        "page": page,
        "live_only": live,
        "refresh_s": REFRESH_S,
        "login": request.app[TOKEN_KEY] is not None,
        **data,
    }


async def _overview(settings: Settings) -> dict[str, Any]:
    """The overview's data, read in a thread (file reads must not stall other requests); with
    Redis configured, the fleet as Redis knows it, within FLEET_WAIT_S."""
    doc = await asyncio.to_thread(overview, settings)
    if settings.redis_url:
        try:
            doc["fleet"] = await asyncio.wait_for(read_fleet(settings.redis_url), FLEET_WAIT_S)
        except TimeoutError:
            doc["fleet"] = {"reachable": False, "error": "timeout", "accounts": {}}
    return doc


async def overview_page(request: web.Request) -> web.Response:
    doc = await _overview(request.app[SETTINGS_KEY])
    return aiohttp_jinja2.render_template(
        "overview.html", request, _context(request, "overview", doc=doc)
    )


async def jobs_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    data = await asyncio.to_thread(_jobs_data, settings)
    return aiohttp_jinja2.render_template("jobs.html", request, _context(request, "jobs", **data))


def _jobs_data(settings: Settings) -> dict[str, Any]:
    finished = finished_jobs(settings)
    return {
        "active": active_jobs(overview(settings)),
        "finished": finished,
        # The report's own rule for rows that go to the failures CSV (`needs_action`).
        "attention": {
            j.job_id: any(n and needs_action(o) for o, n in j.counts.items()) for j in finished
        },
        "failed": failed_manifests(settings),
    }


def _job_data(settings: Settings, job_id: str, query: str, at: int, row: int) -> dict[str, Any]:
    job = job_detail(settings, job_id)
    if job is None:
        raise web.HTTPNotFound(text="no such job")
    paths, failures = QueuePaths(settings.queue_dir), None
    if "failures" in job.downloads:
        failures = failure_page(paths.report_paths(job.job_id).failures, at, row, query)
    elif job.state == "active":  # no failures CSV yet: the journal's failures so far
        failures = journal_failure_page(paths.job_dir(job.job_id) / JOURNAL_NAME, at, query)
    return {"job": job, "bars": chart(job.counts), "failures": failures, "q": query, "at": at}


def _paging(request: web.Request) -> tuple[str, int, int]:
    query = request.query.get("q", "")[:QUERY_MAX]
    try:
        at = min(max(int(request.query.get("at", "0")), 0), AT_MAX)
        row = min(max(int(request.query.get("row", "1")), 1), AT_MAX)
    except ValueError:
        at, row = 0, 1
    return query, at, row


async def job_page(request: web.Request) -> web.Response:
    query, at, row = _paging(request)
    job_id = request.match_info["job_id"]
    data = await asyncio.to_thread(_job_data, request.app[SETTINGS_KEY], job_id, query, at, row)
    return aiohttp_jinja2.render_template("job.html", request, _context(request, "job", **data))


async def download(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    kind = DOWNLOADS.get(request.match_info["kind"])
    job = job_detail(settings, request.match_info["job_id"])
    if kind is None or job is None or kind[0] not in job.downloads:
        raise web.HTTPNotFound(text="no such file")
    path = getattr(QueuePaths(settings.queue_dir).report_paths(job.job_id), kind[0])
    return web.FileResponse(
        path,
        headers={
            "Content-Type": kind[1],
            "Content-Disposition": f'attachment; filename="{path.name}"',
        },
    )


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.FileResponse(HERE / "web_static" / name, headers={"Content-Type": STATIC[name]})


async def overview_json(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    doc = await _overview(settings)
    doc["active"] = [j.model_dump() for j in active_jobs(doc)]
    doc["failed"] = [f.model_dump() for f in await asyncio.to_thread(failed_manifests, settings)]
    return web.json_response(doc)


async def job_json(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    job = await asyncio.to_thread(job_detail, request.app[SETTINGS_KEY], job_id)
    if job is None:
        raise web.HTTPNotFound(text="no such job")
    return web.json_response(job.model_dump())


async def login_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template(
        "login.html", request, _context(request, "login", wrong=False)
    )


async def login(request: web.Request) -> web.Response:
    """Check the form's token; a right one sets the session cookie and goes to the overview."""
    token = request.app[TOKEN_KEY]
    form = await request.post()  # bounded by the app's client_max_size
    given = form.get("token")
    if (
        token is None
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), token.encode())
    ):
        response = aiohttp_jinja2.render_template(
            "login.html", request, _context(request, "login", wrong=True)
        )
        response.set_status(401)
        return response
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="Strict", path="/")
    raise response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview_page)
    app.router.add_get("/jobs", jobs_page)
    app.router.add_get("/jobs/{job_id}", job_page)
    app.router.add_get("/jobs/{job_id}/files/{kind}", download)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/overview.json", overview_json)
    app.router.add_get("/api/jobs/{job_id}.json", job_json)
    app.router.add_get(LOGIN_PATH, login_form)
    app.router.add_post(LOGIN_PATH, login)
