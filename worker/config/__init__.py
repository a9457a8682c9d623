"""Configuration: `Settings` (every knob, its default, its validation), the key file, and the
README's settings table. Built once by the CLI and passed down; imports only `worker.base`.
"""
