"""The spool directory (design.md §3): discover, claim, lease, finish, fail and recover jobs.

Owns: every file operation on `<queue_dir>/{inbox,active,done,failed,reports}` except the
contents of the journal and the reports, which belong to `worker.journal` / `worker.job.report`
(this package only tells them where to write). It never parses a manifest and never calls the API.

One concern a module: `paths.py` (layout, names, folder set-up), `discover.py` (which inbox
files are ready), `claim.py` (every move of a job: claim, settle, recover, finish, fail),
`lease.py` (the lease protocol and heartbeat). The pure rules are in `worker/queue/rules.py`.
`JobQueue` (`jobqueue.py`) composes the parts as one worker's view of the queue; its seams are
constructor arguments (clocks, host, and the test hooks `crash_hook`, `hash_file`, `on_scan`,
`write_lease`), never patched module globals.
"""
