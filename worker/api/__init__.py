"""The API client: the worker's only door to the voiceprint API.

`ApiClient` (client.py) is put together from one module per concern: transport.py (one
attempt on the wire), loop.py (the request loop), retry_rules.py (each reason to retry or stop,
pure), auth.py (key, credentials, token), and the resource methods as the contract groups them
(identities.py, audios.py, voiceprints.py, records.py). `Governor` (governor.py) is the
process-wide rate budget; errors.py says what a failure means to the caller; schemas.py holds
the wire models.
"""
