# syntax=docker/dockerfile:1
# Production image: the API only. It talks to a real MongoDB (MONGODB_URL); the embedded
# development database (GPL-2.0 SecantusDB) is deliberately not installed.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The exact, hash-checked versions of requirements.lock (scripts/lock.sh), not whatever
# pyproject's open ranges resolve to on build day; a layer of its own, rebuilt only when the
# lock changes.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.lock
# LICENSE too: pyproject names it in license-files, and a build without it silently ships
# no licence text.
COPY pyproject.toml README.md LICENSE ./
COPY org_service ./org_service
# --no-deps: nothing beyond the lock. pip check fails the build if the lock no longer
# satisfies pyproject's requirements.
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER app
WORKDIR /home/app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# --proxy-headers believes X-Forwarded-For only from FORWARDED_ALLOW_IPS, which uvicorn reads
# from the environment (default 127.0.0.1): no --forwarded-allow-ips here, it would win.
# asyncio's event loop, not uvloop: under a burst of connections uvloop left some of them
# unserved for seconds (docs/benchmarks.md, "Overload").
CMD ["uvicorn", "org_service.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-server-header", "--proxy-headers", "--no-access-log", "--loop", "asyncio"]
