"""The spool directory (design.md §3): discover, claim, lease, finish, fail and recover jobs.

Owns: every file operation on `<queue_dir>/{inbox,active,done,failed,reports}` except the
contents of the journal and the reports, which belong to `journal.py` / `report.py` (this
package only tells them where to write). It never parses a manifest and never calls the API.

One concern a module: `paths.py` (layout, names, folder set-up), `discover.py` (which inbox
files are ready), `claim.py` (every move of a job: claim, settle, recover, finish, fail),
`lease.py` (the lease protocol and heartbeat). The pure rules are in `worker/queue/rules.py`.
`JobQueue` puts the parts together as one worker's view of the queue. Test seams are patched
where they are used: `worker.queue.claim.crash_hook`, `worker.queue.claim.sha256_file`.
"""
