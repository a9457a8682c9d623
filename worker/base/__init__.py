"""The ground floor: text and masking, atomic file writes, streamed JSON output, logging, crash
points and malloc tuning. Knows nothing of manifests, queues, the API or enrollments; imports
no other package of the worker.
"""
