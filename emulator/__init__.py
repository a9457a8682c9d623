"""A local voiceprint API that follows docs/api-contract.md, for demos, tests, benchmarks.

Modules, one job each: `config` (options, seeded world), `rules` (handles, times, model table),
`pagination`, `audio` (decode + measure), `state/` (the world and every rule, one module per
resource), `persist` (atomic, group-committed state file), `ratelimit`, `faults`, `stats`,
`app` (the route table and middlewares) with `routes/` (the handlers, one module per
resource), `server` (lifecycle), `cli` (`enroller emulator`), `demo` (`enroller demo`).
Of the worker it uses only the decoder (`worker.audio.decode`, so both decode alike) and, in
`demo`, the worker itself; the worker never imports the emulator.

Decisions where the contract is silent [ours]:
- 403 is decided on the owner before the space is looked up, so other owners' spaces do not
  leak their existence (`other` gets 403 for `acme/anything`); an own unknown space is 404.
- Adding an audio still `avaitingFile`, linked to another identity, or already added → 409;
  an undecodable (`notAvailable`) audio or one outside the model's limits → 422.
- Requirement checks compare at the wire's millisecond precision.
- `sort` takes a field name, `-field` for descending; default `createdAt` (`computedAt` for
  records). `search` is case-insensitive. A page past the last one is 400, except page 1 of an
  empty list (`[]`, `Page-Total: 0`). Records refuse `search` (400).
- `Retry-After` is whole seconds, rounded up, at least 1.
- Faults: on POST/DELETE half of the 500s and drops happen after the effect was stored (the
  client faces a genuine unknown outcome); 503 is always before any effect; reads fail before.
- A voiceprint's rename (PATCH) and delete, [inferred] in the contract: a rename keeps the
  voiceprint (id, state, audios, computedAt) and its records keep the old handle; a delete
  leaves its audios and records; both are 409 while a delayed compute is pending. Each can be
  taken away (`--no-voiceprint-rename`, `--no-voiceprint-delete`): 405 with `Allow`.
- Faults on PATCH act as on POST/DELETE: half of the 500s and drops come after the effect.
- Session tokens, credits spent, records and audio measurements persist; audio bytes do not.
  Users, orgs and keys always come from the configuration, which wins over the state file.
"""
