"""voiceprint-enroller: turns manifest files into computed voiceprints through the API."""

__version__ = "0.1.0"
