"""The client against the emulator's `--retry-after-format http-date`.

api-contract.md §5: a 429 with Retry-After (seconds or an HTTP-date) is throttling, waited out
and never a failure (credits 429s: tests/e2e/test_client_limits.py and the unit tests).
Behaviour only, never wall time.
"""

from __future__ import annotations

import anyio
from pydantic import SecretStr

from tests.emulator_harness import DEMO_KEY, running_emulator
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.governor import Governor


def make_client(url: str, rate: float, **retry: float) -> ApiClient:
    return ApiClient(
        url,
        ApiKeyAuth(SecretStr(DEMO_KEY)),
        governor=Governor(rate, 1, max_in_flight=16, adaptive=False),
        retry=RetryPolicy(**{"max_retries": 0, "max_time": 0.5, **retry}),  # type: ignore[arg-type]
    )


async def test_http_date_retry_after_is_obeyed_and_never_fails_a_call() -> None:
    # The client asks at 10x the server's rate, allows no retry and almost no retry time:
    # every 429 must be waited out from its date, not counted as a failure.
    async with running_emulator(rate_limit=3, burst=2, retry_after_format="http-date") as emu:
        async with make_client(emu.base_url, 40) as api:

            async def ask() -> None:
                for _ in range(2):
                    await api.list_models()

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(ask)
        stats = await emu.stats()
    assert stats["requests"]["by_status"]["200"] == 6
    assert stats["rate_limited"] > 0 and api.governor.stats.throttled == stats["rate_limited"]
    assert stats["retry_after_violations"] == 0  # nobody came back before the date
