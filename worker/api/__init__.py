"""The API client: the worker's only door to the voiceprint API.

`ApiClient` (client.py) is composed of one object per concern: a `Transport` (transport.py, one
attempt on the wire; the seam tests replace with a script, as httpx's transports), the
`RequestLoop` (loop.py, holding auth, transport, governor and the send gate), retry_rules.py
(each reason to retry or stop, pure), the `Authenticator` (auth.py: key, credentials, token),
and the resource groups as the contract groups them (identities.py, audios.py, voiceprints.py,
records.py), each holding the loop. `Governor` (governor.py) is the process-wide rate budget; a
job passes its `SendGate` (its lease guard) through `ApiClient.gated`, so nothing here imports
the queue. errors.py says what a failure means to the caller; schemas.py holds the wire models.
"""
