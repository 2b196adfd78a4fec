#!/usr/bin/env python3
"""`just soak`, part 2: PostgreSQL really stopped (pg_ctl stop -m fast) under load.

Drives the challenge route from CONCURRENCY threads (keep-alive connections) for the whole run;
after WARMUP seconds stops the soak cluster, restarts it DOWN seconds later, and keeps going
for AFTER seconds. Prints the statuses, the slowest 503, and the recovery time (restart to the
first 200 on every thread). Exits non-zero on any status other than 200/503, a 503 slower
than the pool timeout plus one second, or no recovery within 5 s.
Environment: SOAK_BASE (server URL), SOAK_TOKEN, SOAK_PG (path of scripts/pg.sh),
SOAK_POOL_TIMEOUT_MS.
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

CONCURRENCY, WARMUP, DOWN, AFTER = 8, 3.0, 4.0, 8.0
base = urlparse(os.environ["SOAK_BASE"])
token = os.environ["SOAK_TOKEN"]
pool_timeout = int(os.environ.get("SOAK_POOL_TIMEOUT_MS", "2000")) / 1000
users = ["user-123", "user-124", "user-125"]
answers = [[] for _ in range(CONCURRENCY)]
start = time.monotonic()
end = start + WARMUP + DOWN + AFTER


def caller(i):
    conn = None
    n = 0
    while time.monotonic() < end:
        if conn is None:
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
        user = users[(i + n) % len(users)]
        n += 1
        at = time.monotonic()
        try:
            conn.request("POST", f"/nevisidm/api/auth/v1/client-123/users/{user}/otp/challenge",
                         headers={"Authorization": f"Bearer {token}", "Content-Length": "0"})
            response = conn.getresponse()
            body = json.loads(response.read() or b"null")
            answers[i].append((at - start, time.monotonic() - at, response.status,
                               response.getheader("Retry-After"), body))
        except (OSError, http.client.HTTPException) as err:
            answers[i].append((at - start, time.monotonic() - at, f"transport: {err}", None, None))
            conn = None


threads = [threading.Thread(target=caller, args=(i,)) for i in range(CONCURRENCY)]
for t in threads:
    t.start()
time.sleep(WARMUP)
subprocess.run([os.environ["SOAK_PG"], "stop", "soak"], check=True)
stopped = time.monotonic() - start
time.sleep(DOWN)
subprocess.run([os.environ["SOAK_PG"], "url", "soak"], check=True, stdout=subprocess.DEVNULL)
restarted = time.monotonic() - start
for t in threads:
    t.join()

flat = [a for thread in answers for a in thread]
counts = {}
for a in flat:
    counts[a[2]] = counts.get(a[2], 0) + 1
failures = []
unavailable = [a for a in flat if a[2] == 503]
for a in flat:
    if a[2] not in (200, 503):
        failures.append(f"unexpected answer {a[2]} {a[4]}")
for a in unavailable:
    if a[3] is None or a[4]["errors"][0]["code"] != "errors.fatalError":
        failures.append(f"503 without Retry-After or errors.fatalError: {a}")
slowest = max((a[1] for a in unavailable), default=0.0)
if slowest > pool_timeout + 1.0:
    failures.append(f"a 503 took {slowest:.2f} s (pool timeout {pool_timeout} s)")
recovery = 0.0
for thread in answers:
    first = next((a for a in thread if a[0] >= restarted and a[2] == 200), None)
    if first is None:
        failures.append("a caller never recovered")
    else:
        recovery = max(recovery, first[0] + first[1] - restarted)
if recovery > 5.0:
    failures.append(f"recovery took {recovery:.2f} s")
if not unavailable:
    failures.append("the outage was not noticed")
print(f"soak outage: {len(flat)} requests, statuses {counts}, PostgreSQL stopped at "
      f"{stopped:.1f} s for {restarted - stopped:.1f} s, slowest 503 {slowest * 1000:.0f} ms, "
      f"recovery {recovery * 1000:.0f} ms after restart, 5xx other than 503: "
      f"{sum(v for k, v in counts.items() if isinstance(k, int) and k >= 500 and k != 503)}")
for f in failures[:20]:
    print("soak outage: FAIL", f, file=sys.stderr)
sys.exit(1 if failures else 0)
