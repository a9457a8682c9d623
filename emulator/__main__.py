"""`python -m emulator [flags]`: the emulator without the worker's CLI (used by test harnesses)."""

import sys

from emulator.cli import main

sys.exit(main(sys.argv[1:]))
