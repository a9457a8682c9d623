"""The API client: the worker's only door to the voiceprint API."""
