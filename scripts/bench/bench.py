#!/usr/bin/env python3
"""`just bench`: the challenge endpoint against the database's own limit, in one run.

Driven by scripts/bench/run, which builds the release binary, installs wrk if missing and
starts the bench PostgreSQL cluster (PostgreSQL's default durability). This script:
  1. generates seeded data sets inside PostgreSQL (scripts/bench/generate.sql), cached by size;
  2. serves each with the release binary and drives it with wrk (scripts/bench/wrk.lua) at
     concurrency 1, 8 and 32, challenge lifetime 0 (every request stores) and 120 (re-served);
  3. captures the statements one request executes from the PostgreSQL log and replays exactly
     those with pgbench at the same concurrency, on the same database;
  4. prints one table, writes target/bench/report.md and one `bench:` line per row.
Environment: BENCH_SECONDS (measured seconds per run, default 10), BENCH_WARMUP (default 2),
BENCH_GROWTH (0 skips the 1k / 1M / 99x26 runs).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target/release/idm-otp"
OUT = ROOT / "target/bench"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
GROWTH = os.environ.get("BENCH_GROWTH", "1") != "0"
ADMIN_URL = os.environ["BENCH_DATABASE_URL"]  # postgres://idm_otp@127.0.0.1:PORT/idm_otp
SUPER_URL = ADMIN_URL.replace("idm_otp@", "postgres@", 1)
SERVER_BASE = ADMIN_URL.rsplit("/", 1)[0]
PG_BIN = Path(os.environ["BENCH_PG_BIN"])
SECRET = "bench-hs256-secret-0123456789-abcdefghijkl"
HMAC = "bench-card-hmac-key-0123456789"
RIGHT = "AccessControl.CredentialView"


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def psql(url, *args, **kwargs):
    return subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args],
                          check=True, capture_output=True, text=True, **kwargs).stdout


def dataset(name, users, rows, cols):
    """Creates (once) and returns the URL of a database with this data set."""
    db = "bench_" + re.sub(r"\W", "_", name)
    url = f"{SERVER_BASE}/{db}"
    marker = f"{users}x{rows}x{cols}"
    exists = psql(ADMIN_URL, "-At", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip()
    if exists:
        try:
            found = psql(url, "-At", "-c", "SELECT marker FROM bench_marker").strip()
        except subprocess.CalledProcessError:
            found = ""
        if found == marker:
            psql(url, "-c", "VACUUM ANALYZE")  # so autovacuum does not run during a measurement
            log(f"data set {name} ({users} users, {rows}x{cols} cards) reused")
            return url
        psql(ADMIN_URL, "-c", f"DROP DATABASE {db} WITH (FORCE)")
    started = time.time()
    psql(ADMIN_URL, "-c", f"CREATE DATABASE {db}")
    subprocess.run([str(BIN), "migrate"], env=server_env(url), check=True, capture_output=True)
    psql(url, "-v", f"users={users}", "-v", f"rows={rows}", "-v", f"cols={cols}",
         "-f", str(ROOT / "scripts/bench/generate.sql"))
    psql(url, "-c", f"CREATE TABLE bench_marker AS SELECT '{marker}'::text AS marker")
    psql(url, "-c", "VACUUM ANALYZE")
    log(f"data set {name}: {users} users, {rows}x{cols} cards generated in {time.time() - started:.1f} s")
    return url


def server_env(url):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url,
        "IDM_OTP_JWT_HS256_SECRET": SECRET,
        "IDM_OTP_CARD_HMAC_KEY": HMAC,
        "IDM_OTP_LOG__FILTER": "info",
    })
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url):
        self.port = free_port()
        self.log = open(OUT / "server.log", "ab")
        self.proc = subprocess.Popen([str(BIN), "serve", "--bind", f"127.0.0.1:{self.port}"],
                                     env=server_env(url), stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("bench: the server did not start; see target/bench/server.log")
                time.sleep(0.05)

    def peak_rss_mb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)
        self.log.close()


def tokens():
    return [subprocess.run([str(BIN), "dev-token", "--client", "client-0", "--user", f"caller-{k}"],
                           env=server_env("unused"), check=True, capture_output=True,
                           text=True).stdout.strip() for k in range(1, 21)]


def write_params(users, toks, fixed_user=None):
    path = OUT / "params.lua"
    fixed = "nil" if fixed_user is None else "{client = %d, n = %d}" % fixed_user
    quoted = ", ".join(f'"{t}"' for t in toks)
    path.write_text(f"return {{users = {users}, tokens = {{{quoted}}}, fixed_user = {fixed}}}\n")
    return path


def wrk(port, concurrency, seconds, params):
    env = dict(os.environ, BENCH_PARAMS=str(params))
    threads = str(min(concurrency, 2))
    cmd = ["wrk", "-t", threads, "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(ROOT / "scripts/bench/wrk.lua"), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK "))
    return dict(kv.split("=", 1) for kv in line[4:].split())


def set_lifetime(url, seconds):
    psql(url, "-c", f"UPDATE clients SET challenge_lifetime_seconds = {seconds}")


LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def capture_statements(url, port, toks, users):
    """One request with log_statement = all: the statements and their parameters."""
    cluster_log = Path(os.environ["BENCH_PG_LOG"])
    psql(SUPER_URL, "-c", "ALTER SYSTEM SET log_statement = 'all'", "-c", "SELECT pg_reload_conf()")
    time.sleep(0.5)
    offset = cluster_log.stat().st_size
    # caller-1 (global data rooms) asks for user-3 of client-3.
    req = (f"POST /nevisidm/api/auth/v1/client-3/users/user-3/otp/challenge HTTP/1.1\r\n"
           f"Host: x\r\nAuthorization: Bearer {toks[0]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req.encode())
        response = s.recv(65536).decode()
    time.sleep(0.5)
    psql(SUPER_URL, "-c", "ALTER SYSTEM RESET log_statement", "-c", "SELECT pg_reload_conf()")
    if " 200 " not in response.splitlines()[0]:
        raise SystemExit(f"bench: capture request failed: {response}")
    text = cluster_log.read_bytes()[offset:].decode(errors="replace")
    entries, current = [], None
    for line in text.splitlines():
        if LOG_ENTRY.match(line):
            if current:
                entries.append(current)
            current = line
        elif current is not None:
            current += "\n" + line
    if current:
        entries.append(current)
    statements = []
    for entry in entries:
        m = re.search(r"LOG:  (?:execute [^:]*|statement): (.*)", entry, re.S)
        # Connection setup (SET ...) by pool connections opened meanwhile is not the request's.
        if m and "ALTER SYSTEM" not in entry and "pg_reload_conf" not in entry:
            setup = m.group(1).lstrip().upper().startswith("SET ")
            statements.append([m.group(1).strip(), {}, setup])
        d = re.search(r"DETAIL:  parameters: (.*)", entry, re.S)
        if d and statements:
            for k, v in re.findall(r"\$(\d+) = '((?:[^']|'')*)'", d.group(1)):
                statements[-1][1][int(k)] = v
    return [[sql, params] for sql, params, setup in statements if not setup]


def card_of(url, user):
    row = psql(url, "-At", "-F", "|", "-c",
               "SELECT k.id, k.version FROM otp_cards k JOIN users u ON u.id = k.user_id "
               f"WHERE u.ext_id = '{user}' AND k.state <> 'archived' "
               "ORDER BY k.created_at DESC, k.seq DESC LIMIT 1").strip()
    return row.split("|")


def pgbench_script(statements, card_id, version, users, cells):
    """The captured statements with the request's values replaced by per-transaction random
    choices made like wrk.lua's."""
    blocks = max(1, users // 640)
    by_value = {"client-0": "'client-0'", "caller-1": "('caller-' || :k)",
                "client-3": "('client-' || :c)", "user-3": "('user-' || :n)", RIGHT: f"'{RIGHT}'",
                card_id: ":card_id", "1": "1"}
    lines = [
        "\\set k random(1, 20)",
        f"\\set m random(0, {blocks - 1})",
        "\\if :k <= 5", "\\set c random(0, 9)", "\\set leaf random(0, 63)",
        "\\elif :k <= 10", "\\set c :k - 6", "\\set leaf random(0, 63)",
        "\\elif :k <= 15", "\\set c :k - 11", "\\set leaf 4 * (:k - 11) + random(0, 3)",
        "\\else", "\\set c :k - 11", "\\set leaf 16 * ((:k - 16) % 4) + random(0, 15)",
        "\\endif",
        "\\set n 10 * (64 * :m + :leaf) + :c",
        f"\\set cell random(0, {cells - 1})",
    ]
    for sql, params in statements:
        is_update = sql.lstrip().upper().startswith("UPDATE")

        def replace(match):
            i = int(match.group(1))
            value = params[i]
            if is_update:
                if re.fullmatch(r"\d{4}-\d\d-\d\d[ T].*", value):
                    return "now()"
                if value == version and i == max(params):
                    return ":version"
                if i == 1:
                    return ":cell"
            if value in by_value:
                return by_value[value]
            raise SystemExit(f"bench: no replay expression for ${i} = {value!r} in {sql[:60]!r}")
        replayed = re.sub(r"\$(\d+)", replace, sql)
        ends = "\n\\gset" if "card_id" in sql else ";"
        lines.append(replayed + ends)
    return "\n".join(lines) + "\n"


def pgbench(url, script_text, concurrency, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "challenge.sql"
        script.write_text(script_text)
        cmd = [str(PG_BIN / "pgbench"), "-n", "-M", "prepared", "-c", str(concurrency),
               "-j", str(min(concurrency, 2)), "-T", str(seconds), "-f", str(script),
               "-l", "--log-prefix", str(Path(tmp) / "txn"), url]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp).stdout
        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
        failed = int((re.search(r"number of failed transactions: (\d+)", out) or [0, "0"])[1])
        latencies = []
        for f in Path(tmp).glob("txn*"):
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]))
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000 if latencies else float("nan")
        return tps, p99, failed


def measure(label, url, server, params, statements_script, concurrency, lifetime, rows):
    # Start both measurements from a clean checkpoint so neither pays for the other's writes.
    psql(SUPER_URL, "-c", "CHECKPOINT")
    wrk(server.port, concurrency, WARMUP, params)
    w = wrk(server.port, concurrency, SECONDS, params)
    psql(SUPER_URL, "-c", "CHECKPOINT")
    tps, pg_p99, pg_failed = pgbench(url, statements_script, concurrency, SECONDS)
    rps = float(w["rps"])
    errors = int(w["non200"]) + int(w["socket_errors"])
    row = {
        "set": label, "c": concurrency, "lifetime": lifetime, "rps": rps,
        "p50_ms": float(w["p50_ms"]), "p99_ms": float(w["p99_ms"]), "errors": errors,
        "statuses": w["statuses"], "pgbench_tps": tps, "pgbench_p99_ms": pg_p99,
        "pgbench_failed": pg_failed, "ratio": rps / tps if tps else float("nan"),
        "rss_mb": server.peak_rss_mb(),
    }
    rows.append(row)
    print(f"bench: set={label} c={concurrency} lifetime={lifetime} rps={rps:.0f} errors={errors} "
          f"p50_ms={row['p50_ms']:.2f} p99_ms={row['p99_ms']:.2f} pgbench_tps={tps:.0f} "
          f"pgbench_p99_ms={pg_p99:.2f} ratio={row['ratio']:.2f} rss_mb={row['rss_mb']:.1f}",
          flush=True)
    if errors:
        print(f"bench:   non-200 answers by status: {w['statuses'] or '-'}; socket errors: {w['socket_errors']}",
              flush=True)


def run_set(label, users, rows_, cols, series, rows, show_statements=False):
    url = dataset(label, users, rows_, cols)
    cells = rows_ * cols
    server = Server(url)
    try:
        toks = tokens()
        params = write_params(users, toks)
        scripts = {}
        for lifetime in sorted({lt for _, lt in series}):
            set_lifetime(url, lifetime)
            if lifetime:
                capture_statements(url, server.port, toks, users)  # issues; the next re-serves
            card_id, version = card_of(url, "user-3")
            statements = capture_statements(url, server.port, toks, users)
            expected = 2 if lifetime else 3  # re-served: 2 SELECTs; issued: + the UPDATE
            if len(statements) != expected:
                raise SystemExit(f"bench: captured {len(statements)} statements for one request, "
                                 f"expected {expected}: {[sql[:40] for sql, _ in statements]}")
            scripts[lifetime] = pgbench_script(statements, card_id, version, users, cells)
            if show_statements:
                kind = "issued (lifetime 0)" if lifetime == 0 else "re-served (lifetime %d)" % lifetime
                report_statements.append((kind, statements))
        for concurrency, lifetime in series:
            set_lifetime(url, lifetime)
            measure(label, url, server, params, scripts[lifetime], concurrency, lifetime, rows)
    finally:
        server.stop()


report_statements = []


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "server.log").write_bytes(b"")
    started = time.time()
    rows = []
    main_series = [(c, 0) for c in (1, 8, 32)] + [(c, 120) for c in (1, 8, 32)]
    run_set("100k", 100_000, 12, 14, main_series, rows, show_statements=True)
    if GROWTH:
        run_set("1k", 1_000, 12, 14, [(32, 0)], rows)
        run_set("1m", 1_000_000, 12, 14, [(32, 0)], rows)
        run_set("100k 99x26", 100_000, 99, 26, [(32, 0)], rows)
    elapsed = time.time() - started
    header = ("| data set | c | lifetime | req/s | p50 ms | p99 ms | errors | pgbench TPS | "
              "pgbench p99 ms | ratio | server peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|")
    table = "\n".join(
        f"| {r['set']} | {r['c']} | {r['lifetime']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
        f"{r['p99_ms']:.2f} | {r['errors']} | {r['pgbench_tps']:.0f} | {r['pgbench_p99_ms']:.2f} | "
        f"{r['ratio']:.2f} | {r['rss_mb']:.1f} |" for r in rows)
    lines = "\n".join(
        f"bench: c={r['c']} lifetime={r['lifetime']} set={r['set']} rps={r['rps']:.0f} "
        f"errors={r['errors']} p99_ms={r['p99_ms']:.2f} pgbench_tps={r['pgbench_tps']:.0f} "
        f"pgbench_p99_ms={r['pgbench_p99_ms']:.2f} ratio={r['ratio']:.2f} rss_mb={r['rss_mb']:.1f}"
        for r in rows)
    statements = "\n\n".join(
        f"{kind}: {len(st)} statements\n\n" + "\n".join(f"```sql\n{sql}\n```" for sql, _ in st)
        for kind, st in report_statements)
    report = (f"# Benchmark report\n\n{SECONDS} s per run after {WARMUP} s of warm-up; wrk and "
              f"pgbench at the same concurrency on the same database; {os.cpu_count()} cores.\n\n"
              f"{header}\n{table}\n\n## Statements replayed by pgbench (captured from the "
              f"PostgreSQL log)\n\n{statements}\n\n```\n{lines}\n```\n\nTotal {elapsed:.0f} s.\n")
    (OUT / "report.md").write_text(report)
    print(f"\n{header}\n{table}\n\n{lines}\n\nreport: target/bench/report.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
