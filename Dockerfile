# syntax=docker/dockerfile:1
# voiceprint-enroller: the worker (`enroller run`), and with another command the bundled API
# emulator (`enroller emulator --host 0.0.0.0`). See README.md, "Container".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1: forwards SIGTERM to the worker (two-phase shutdown) and reaps children.
# (Alternatively drop it and run the container with `init: true` / `docker run --init`.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so this layer is rebuilt only when they
# change, not on every source edit. tests/unit/test_deploy.py runs this very extraction.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the source. --no-deps: nothing is installed beyond the layer above.
COPY README.md ./
COPY worker ./worker
COPY emulator ./emulator
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info

# Never root. /jobs is the queue volume (inbox/ active/ done/ failed/ reports/ audio/).
RUN useradd --create-home --uid 10001 --user-group enroller \
 && mkdir -p /jobs \
 && chown enroller:enroller /jobs
USER enroller
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
