# voiceprint-enroller: the worker (`enroller run`), and with another command the bundled API
# emulator (`enroller emulator --host 0.0.0.0`) or the demo (`enroller demo`). See README.md,
# "Container". Built and run in a real engine by `make test-container` (tests/container/).
# No `# syntax=` line: nothing here needs a newer frontend, and BuildKit would pull one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1: forwards SIGTERM to the worker (two-phase shutdown) and reaps children.
# (Alternatively drop it and run the container with `init: true` / `docker run --init`.)
# The user too, in the same layer: every layer costs a full copy on storage drivers like vfs.
# Never root. /jobs is the queue volume (inbox/ active/ done/ failed/ reports/ audio/).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group enroller \
 && mkdir -p /jobs \
 && chown enroller:enroller /jobs

WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so this layer is rebuilt only when they
# change, not on every source edit. tests/unit/test_deploy.py runs this very extraction.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the source. --no-deps: nothing is installed beyond the layer above. The example
# manifests go to <prefix>/share/voiceprint-enroller/examples, where `enroller demo` finds them
# when it is not run from a checkout.
COPY README.md ./
COPY worker ./worker
COPY emulator ./emulator
COPY jobs/examples ./jobs/examples
RUN pip install --no-deps . \
 && share="$(python -c 'import sys; print(sys.prefix)')/share/voiceprint-enroller" \
 && mkdir -p "$share" \
 && cp -r jobs/examples "$share/examples" \
 && rm -rf build ./*.egg-info

USER enroller
# A folder the user may write: `enroller demo` puts its ./demo-run here.
WORKDIR /home/enroller
ENV ENROLLER_QUEUE_DIR=/jobs
VOLUME ["/jobs"]
# Prometheus /metrics and /healthz when ENROLLER_METRICS_PORT=9100 (off by default).
EXPOSE 9100

# Fails when the worker's heartbeat (<queue>/.health/) is older than ENROLLER_HEALTH_MAX_AGE or
# a queue folder is not writable.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["enroller", "healthcheck", "--quiet"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["enroller", "run"]
