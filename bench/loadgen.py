"""A closed-loop HTTP/1.1 load generator for bench/ingest.py, in the standard library only.

    python bench/loadgen.py URL BODY_FILE SIGNATURE SECONDS CONNECTIONS RUN_ID

Each of CONNECTIONS keep-alive connections sends the same signed GitHub delivery (the
signature covers the body only) with its own X-GitHub-Delivery, waits for the answer, and
sends the next, for SECONDS. Prints one JSON line: answers by status, latencies (p50,
p99, ms) and the inbox ids of the 202 answers (to check they were all stored).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

_ID = re.compile(rb'"id":(\d+)')


async def connection(host: str, port: int, path: str, body: bytes, signature: str,
                     run: str, n: int, until: float, out: dict[str, list[float]]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: issues\r\n"
            f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n")
    count = 0
    try:
        while time.monotonic() < until:
            count += 1
            request = (head + f"X-GitHub-Delivery: {run}-{n}-{count}\r\n\r\n").encode() + body
            sent = time.monotonic()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            out["latency"].append(time.monotonic() - sent)
            status = int(status_line.split()[1])
            out["status"].append(status)
            if status == 202 and (found := _ID.search(answer)):
                out["ids"].append(int(found.group(1)))
    except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
        out["status"].append(-1)
    finally:
        writer.close()


async def main() -> None:
    url, body_file, signature, seconds, connections, run = sys.argv[1:7]
    parts = urlsplit(url)
    body = Path(body_file).read_bytes()
    out: dict[str, list[float]] = {"latency": [], "status": [], "ids": []}
    until = time.monotonic() + float(seconds)
    began = time.monotonic()
    await asyncio.gather(*(connection(parts.hostname or "127.0.0.1", parts.port or 80,
                                      parts.path, body, signature, run, n, until, out)
                           for n in range(int(connections))))
    took = time.monotonic() - began
    latencies = sorted(out["latency"])

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 \
            if latencies else float("nan")

    by_status: dict[str, int] = {}
    for status in out["status"]:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    print(json.dumps({"seconds": took, "statuses": by_status, "p50_ms": pct(50),
                      "p99_ms": pct(99), "ids": out["ids"]}))


if __name__ == "__main__":
    asyncio.run(main())
