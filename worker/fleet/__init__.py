"""The fleet: several workers on one API account, coordinated through Redis (design.md §9).

Owns the pieces a fleet shares and nothing a single worker needs: the account's rate budget
(`budget.py`, GCRA in one Lua script), fleet membership (`membership.py`, heartbeat keys) and
voiceprint locks across hosts (`locks.py`). Without `ENROLLER_REDIS_URL` none of it loads and
the worker runs exactly as before: its own budget, file locks, no Redis anywhere.
"""
