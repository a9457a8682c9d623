"""`python -m worker` is the same as `enroller`."""

import sys

from worker.cli import main

sys.exit(main())
