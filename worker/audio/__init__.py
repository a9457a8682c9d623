"""Audio on disk: formats, the FFmpeg decoder, opening files safely, inspecting them, the voice
meter and its rule, and derived (mono) uploads. Knows nothing of manifests, jobs or the API;
imports only `worker.base`.
"""
