# firstline: one image, one command (`firstline serve`: the HTTP side, the worker and the
# outbox performer in one process). Defaults: SQLite in /data, the
# example scope note (shadow mode: it decides and records, and changes nothing outside).
#   docker build -t firstline .
#   docker run -p 8000:8000 -v firstline-data:/data firstline
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY adapters ./adapters
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data firstline \
 && mkdir -p /data /etc/firstline && chown firstline /data
COPY --from=build /install /usr/local
COPY examples/scope.yaml /etc/firstline/scope.yaml
ENV FIRSTLINE_DATABASE_URL=sqlite:////data/firstline.db \
    FIRSTLINE_RULES=/etc/firstline/scope.yaml \
    PYTHONUNBUFFERED=1
USER firstline
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# SIGTERM (docker stop) stops the service gracefully; SIGHUP reloads the scope note.
CMD ["firstline", "serve", "--host", "0.0.0.0", "--port", "8000"]
