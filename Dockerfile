# firstline: one image, one command (`firstline serve`: the HTTP side, the worker and the
# outbox performer in one process). Defaults: SQLite in /data, the example scope note
# (shadow mode: it decides and records, and changes nothing outside).
#   docker build -t firstline .
#   docker run -p 8000:8000 -v firstline-data:/data firstline
# The base is pinned to a Python patch release and a Debian release; bump both together.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY adapters ./adapters
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.14-slim-bookworm
# uid/gid 10001, as the Helm chart's securityContext (runAsUser, runAsGroup, fsGroup).
RUN groupadd --system --gid 10001 firstline \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home firstline \
 && mkdir -p /data /etc/firstline \
 && chown 10001:10001 /data
COPY --from=build /install /usr/local
COPY examples/scope.yaml /etc/firstline/scope.yaml
# Bytecode was compiled at install: nothing is written beside the code at run time, so the
# root filesystem can be read-only (the chart mounts an emptyDir at /tmp for temporary files).
ENV FIRSTLINE_DATABASE_URL=sqlite:////data/firstline.db \
    FIRSTLINE_RULES=/etc/firstline/scope.yaml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# For `docker run` and Compose; Kubernetes ignores it and uses the chart's probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# SIGTERM (docker stop) stops the service gracefully; SIGHUP reloads the scope note.
CMD ["firstline", "serve", "--host", "0.0.0.0", "--port", "8000"]
