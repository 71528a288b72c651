#!/usr/bin/env python3
"""linkgate's benchmark suite: each figure measured side by side with its anchor, in one run.

Run through `bench/run` (it prepares the Python environment); `bench/run --quick` is a smoke
run. Everything listens on 127.0.0.1, every load is bounded in count or time, and everything
started here is stopped on exit. Results: bench/results/results.md, results.json, *.png.
bench/README.md explains each measurement and its anchor.
"""

import argparse
import base64
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB_NAME = f"linkgate_bench_{os.getpid()}"
PG_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
# The last commit whose writers append every connection event under the cluster-wide event lock:
# the events measurement runs its release binary beside this build's, as the baseline.
BASELINE_COMMIT = "f468ed3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linkgate-bench"
# National Grid at the Deck mock; its keys as the mock knows them.
DECK_ENV = {"LINKGATE_DECK_CLIENT_ID": "test-client", "LINKGATE_DECK_CLIENT_SECRET": "test-secret"}

# Bounded sizes of each measurement: the full run aims at about 10 minutes on 2 cores.
FULL = dict(
    rounds=3, unary_seconds=6, rates=[1000, 3000, 6000], c1_requests=5000,
    exchange_counts={1: 500, 8: 2000, 32: 2000}, unlocked_callers=[8, 32], watchers=10_000,
    fanin_ns=[10, 100, 1000], fanin_seconds=30, overhead_requests=3000, starts=5,
    events=dict(writers=32, seconds=10),
    feed=dict(transactions=100_000, added=400, modified=400, removed=200, page_size=500),
)
QUICK = dict(
    rounds=1, unary_seconds=2, rates=[1000, 3000], c1_requests=1000,
    exchange_counts={1: 200, 8: 400, 32: 400}, unlocked_callers=[8, 32], watchers=1000,
    fanin_ns=[10, 100], fanin_seconds=10, overhead_requests=500, starts=2,
    events=dict(writers=32, seconds=3),
    feed=dict(transactions=10_000, added=40, modified=40, removed=20, page_size=500),
)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def quantile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(int(len(sorted_values) * q), len(sorted_values) - 1)]


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def string_field_1(value: str) -> bytes:
    """Protobuf encoding of a message whose field 1 is this string (e.g. GetConnectionRequest)."""
    data = value.encode()
    return b"\x0a" + bytes([len(data)]) + data


class Suite:
    def __init__(self, args):
        self.args = args
        self.size = QUICK if args.quick else FULL
        self.target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        self.linkgate = self.target / "release" / "linkgate"
        self.mock = self.target / "release" / "linkgate-mock"
        self.streams_example = self.target / "release" / "examples" / "bench_streams"
        self.tools = self.target / "release"
        self.work = Path(tempfile.mkdtemp(prefix="linkgate-bench-"))
        # A partial run (--only) writes its side files beside its figures, not into results/.
        self.results_dir = self.work.parent / "linkgate-bench-partial" if args.only else RESULTS
        self.processes = []
        self.databases = []
        self.results = {}
        self.encryption_key = base64.b64encode(os.urandom(32)).decode()

    # ----- processes -----

    def start(self, name, command, env=None):
        """Starts a long-running process; its output goes to a log file in the work directory."""
        output = open(self.work / f"{name}.log", "ab")
        process = subprocess.Popen(
            [str(c) for c in command], env={**os.environ, **(env or {})}, stdout=output, stderr=output,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop(self, process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.remove(process)

    def cleanup(self, succeeded):
        for process in list(self.processes):
            self.stop(process)
        for database in self.databases:
            self.psql(PG_ADMIN_URL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if succeeded:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"the servers' logs stay in {self.work}")

    def run(self, command, env=None, timeout=600, cwd=None):
        """Runs a bounded command and returns its stdout."""
        done = subprocess.run(
            [str(c) for c in command], env={**os.environ, **(env or {})}, capture_output=True, text=True,
            timeout=timeout, cwd=cwd,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def lgload(self, *args, addr=None, key=None, timeout=600):
        command = [self.tools / "lgload"]
        if addr:
            command += ["--addr", addr]
        if key:
            command += ["--key", key]
        return json.loads(self.run([*command, *args], timeout=timeout).strip().splitlines()[-1])

    def psql(self, url, sql):
        return self.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql])

    # ----- linkgate replicas -----

    def serve_env(self, database_url, grpc_port, http_port, **extra):
        # Budgets and stream caps are raised so limits meant for tenants never shape a figure.
        return {
            "LINKGATE_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "LINKGATE_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "LINKGATE_DATABASE_URL": database_url,
            "LINKGATE_ENCRYPTION_KEY": self.encryption_key,
            "LINKGATE_TENANT_CALLS_PER_SECOND": "1000000",
            "LINKGATE_TENANT_CALL_BURST": "1000000",
            "LINKGATE_TENANT_MAX_STREAMS": "20000",
            **{k: str(v) for k, v in extra.items()},
        }

    def serve(self, name, database_url, binary=None, **extra):
        grpc_port, http_port = free_port(), free_port()
        env = self.serve_env(database_url, grpc_port, http_port, **extra)
        process = self.start(name, [binary or self.linkgate, "serve"], env=env)
        server = dict(process=process, addr=f"127.0.0.1:{grpc_port}", http=f"127.0.0.1:{http_port}")
        self.await_ready(server)
        return server

    def await_ready(self, server):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{server['http']}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if server["process"].poll() is not None:
                raise RuntimeError("linkgate exited at start; see its log in the work directory")
            time.sleep(0.05)
        raise RuntimeError("linkgate never became ready")

    def rpc_codes(self, server, method):
        """Calls of one method by gRPC status code, from the replica's own metrics."""
        with urllib.request.urlopen(f"http://{server['http']}/metrics", timeout=5) as response:
            text = response.read().decode()
        pattern = re.compile(r'linkgate_rpc_requests_total\{([^}]*)\} (\S+)')
        codes = {}
        for labels, value in pattern.findall(text):
            if f'method="{method}"' in labels:
                code = re.search(r'code="([^"]*)"', labels).group(1)
                codes[code] = codes.get(code, 0) + int(float(value))
        return codes

    # ----- the suite -----

    def main(self):
        started = datetime.now(timezone.utc)
        self.build()
        self.results["machine"] = self.machine()
        self.results["started_at"] = started.isoformat()
        self.results["mode"] = "quick" if self.args.quick else "full"
        self.results["sizes"] = {k: v for k, v in self.size.items()}
        self.prepare_postgres()
        measurements = {"start": self.startup_and_idle, "unary": self.unary, "exchange": self.exchange,
                        "fan-in": self.fan_in_and_overhead, "streams": self.streams, "feed": self.feed,
                        "events": self.events}
        for name, measure in measurements.items():
            if not self.args.only or name in self.args.only:
                measure()
        finished = datetime.now(timezone.utc)
        self.results["finished_at"] = finished.isoformat()
        self.results["duration_seconds"] = (finished - started).total_seconds()
        if self.args.only:
            # A partial run is for looking into one figure; it leaves the stored results alone.
            partial = self.work.parent / f"linkgate-bench-{'-'.join(self.args.only)}.json"
            partial.write_text(json.dumps(self.results, indent=2) + "\n")
            log(f"done in {self.results['duration_seconds']:.0f} s: {partial}")
            return
        self.results_dir.mkdir(exist_ok=True)
        (RESULTS / "results.json").write_text(json.dumps(self.results, indent=2) + "\n")
        import report

        report.write(self.results, RESULTS)
        log(f"done in {self.results['duration_seconds']:.0f} s: {RESULTS / 'results.md'}")

    def build(self):
        if self.args.no_build:
            return
        log("building linkgate (release), its watch-stream benchmark and the bench tools")
        env = {"CARGO_TARGET_DIR": str(self.target)}
        # One workspace: the server, the mock binary and the tools share the lock file and build.
        self.run(["cargo", "build", "--release", "--locked", "-p", "linkgate", "-p", "linkgate-mocks",
                  "-p", "linkgate-bench-tools", "--bins", "--example", "bench_streams"],
                 env=env, cwd=REPO, timeout=1800)

    def machine(self):
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name")), platform.processor())
        git = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()
        lock = (REPO / "Cargo.lock").read_text()
        tonic = re.search(r'name = "tonic"\nversion = "([^"]+)"', lock)
        return {
            "hostname": platform.node(),
            "cpu": cpu,
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "memory_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
            "postgres": self.psql(PG_ADMIN_URL, "SHOW server_version").strip(),
            "h2load": self.run(["h2load", "--version"]).split()[-1],
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--", "src", "Cargo.lock", "migrations")),
            "tonic": tonic.group(1) if tonic else None,
            "load_average_at_start": os.getloadavg(),
        }

    def baseline(self):
        """The release linkgate of BASELINE_COMMIT, built once into the cache outside the
        repository and reused from there; None with --no-baseline."""
        if self.args.no_baseline:
            return None
        binary = CACHE / f"linkgate-{BASELINE_COMMIT}"
        if binary.exists():
            return binary
        log(f"building the baseline linkgate of {BASELINE_COMMIT} (release, once, into {CACHE})")
        source = CACHE / f"baseline-{BASELINE_COMMIT}"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", BASELINE_COMMIT], cwd=REPO, capture_output=True,
                                 check=True).stdout
        # -m: the files take the time of extraction, newer than anything in the seeded target, so
        # cargo compiles the baseline's own crates rather than reusing this build's.
        subprocess.run(["tar", "-x", "-m", "-C", source], input=archive, check=True)
        # Its own target directory, seeded with this build's compiled dependencies (the same
        # Cargo.lock): mostly the linkgate crate itself is compiled again.
        target = source / "target"
        for part in ("deps", "build", ".fingerprint"):
            if (self.target / "release" / part).exists():
                shutil.copytree(self.target / "release" / part, target / "release" / part, symlinks=True)
        self.run(["cargo", "build", "--release", "--locked", "--bin", "linkgate"],
                 env={"CARGO_TARGET_DIR": str(target)}, cwd=source, timeout=3600)
        shutil.copy2(target / "release" / "linkgate", binary.with_suffix(".partial"))
        binary.with_suffix(".partial").rename(binary)
        # Only the binary is kept: the sources and the target directory would hold gigabytes.
        shutil.rmtree(source)
        return binary

    def create_database(self, name, binary):
        """A database migrated by `binary`, with a tenant; returns its URL and the tenant's key."""
        self.psql(PG_ADMIN_URL, f"CREATE DATABASE {name}")
        self.databases.append(name)
        url = f"postgres://postgres@127.0.0.1:5432/{name}"
        env = {"LINKGATE_DATABASE_URL": url, "LINKGATE_ENCRYPTION_KEY": self.encryption_key}
        self.run([binary, "migrate"], env=env)
        created = self.run([binary, "tenants", "create", "bench"], env=env)
        return url, re.search(r"api key\s+(\S+)", created).group(1)

    def prepare_postgres(self):
        log(f"creating database {DB_NAME} and a tenant")
        _, self.key = self.create_database(DB_NAME, self.linkgate)

    # 7. Start and idle.
    def startup_and_idle(self):
        log("7. start to SERVING and idle RSS, SQLite and PostgreSQL")
        out = {}
        # The third row is a diagnostic, not a deployment: the same PostgreSQL without TLS (the
        # default sslmode=prefer negotiates TLS on loopback too), to show what the first database
        # connection's TLS handshake costs the start.
        backends = {"sqlite": f"sqlite://{self.work / 'start.db'}", "postgres": PG_URL,
                    "postgres, sslmode=disable": f"{PG_URL}?sslmode=disable"}
        for backend, database in backends.items():
            port = free_port()
            env = self.serve_env(database, port, free_port())
            command = [self.tools / "lgload", "--addr", f"127.0.0.1:{port}", "start", "--runs",
                       str(self.size["starts"]), "--", self.linkgate, "serve"]
            runs = json.loads(self.run(command, env=env).strip().splitlines()[-1])
            out[backend] = {
                "runs": runs,
                # The first SQLite start creates the database and its key: reported, not in the median.
                "serving_ms_median": median([r["serving_ms"] for r in runs[1:] or runs]),
                "first_start_ms": runs[0]["serving_ms"],
                "idle_rss_mib_median": median([r["idle_rss_kib"] / 1024 for r in runs]),
                "diagnostic": "sslmode" in backend,
            }
        self.results["start_idle"] = out

    # 1 and 2. Unary cost against bare tonic; latency at concurrency 1 against TCP.
    def unary(self):
        log("1. unary cost: linkgate (PostgreSQL, tenant key) against the bare tonic echo server")
        pg = self.serve("linkgate-pg", PG_URL)
        connection = self.lgload("sandbox-connection", addr=pg["addr"], key=self.key)["connection_id"]
        echo_port = free_port()
        echo = self.start("echo", [self.tools / "echo_server", f"127.0.0.1:{echo_port}"])
        time.sleep(0.3)
        get_frame = self.work / "get.bin"
        get_frame.write_bytes(grpc_frame(string_field_1(connection)))
        health_frame = self.work / "health.bin"
        health_frame.write_bytes(grpc_frame(b""))
        auth = ["-H", f"authorization: Bearer {self.key}"]
        targets = {
            "echo": (echo, f"http://127.0.0.1:{echo_port}/bench.echo.Echo/Unary", get_frame, []),
            "GetConnection": (pg["process"], f"http://{pg['addr']}/linkgate.v1.ConnectionService/GetConnection",
                              get_frame, auth),
            "ListAccounts": (pg["process"], f"http://{pg['addr']}/linkgate.v1.AccountService/ListAccounts",
                             get_frame, auth),
            # The first page (default size) of every transaction of the connection.
            "ListAccountTransactions": (
                pg["process"], f"http://{pg['addr']}/linkgate.v1.AccountService/ListAccountTransactions",
                get_frame, auth),
        }
        loads = [(f"{rate}/s", ["-c", "4", "-m", "16", f"--rps={rate // 4}"]) for rate in self.size["rates"]]
        loads.append(("saturation", ["-c", "4", "-m", "32"]))
        for name, (process, url, frame, headers) in targets.items():
            self.h2load(process, url, frame, headers, ["-c", "4", "-m", "16", "-n", "4000"])  # warm-up
        runs = []
        for round_ in range(self.size["rounds"]):
            for load, shape in loads:
                # Interleaved, so drift in the machine's load touches every target alike.
                for name, (process, url, frame, headers) in targets.items():
                    shape_d = [*shape, "-D", str(self.size["unary_seconds"])]
                    result = self.h2load(process, url, frame, headers, shape_d)
                    runs.append({"round": round_, "load": load, "target": name, **result})
                    log(f"   {load:>10} {name:<23} {result['per_second']:>8.0f}/s  p50 {result['p50_us']:.0f} µs"
                        f"  p99 {result['p99_us']:.0f} µs  {result['cpu_us_per_request']:.1f} CPU-µs/req")
        summary = {}
        for load, _ in loads:
            for name in targets:
                mine = [r for r in runs if r["load"] == load and r["target"] == name]
                summary.setdefault(load, {})[name] = {
                    k: median([r[k] for r in mine])
                    for k in ("per_second", "p50_us", "p99_us", "cpu_us_per_request", "failed")
                }
        self.results["unary"] = {
            "runs": runs, "summary": summary,
            "grpc_codes": {m: self.rpc_codes(pg, m)
                           for m in ("GetConnection", "ListAccounts", "ListAccountTransactions")},
        }
        self.latency_c1(pg, echo, echo_port, connection, get_frame, health_frame, auth)
        self.stop(echo)
        self.stop(pg["process"])

    def h2load(self, process, url, frame, headers, shape, cpus=None):
        """One h2load run of a unary gRPC call (the frame is the pre-encoded request)."""
        grpc = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        return self.h2load_raw(process, url, frame, [*grpc, *headers], shape, cpus)

    def h2load_raw(self, process, url, body, headers, shape, cpus=None):
        """Latency quantiles from h2load's per-request log; the server's CPU from /proc."""
        log_file = self.work / "h2load.tsv"
        log_file.unlink(missing_ok=True)
        pin = ["taskset", "-c", cpus] if cpus else []
        command = [*pin, "h2load", *shape, "-d", body, *headers, "--log-file", log_file, url]
        cpu_before, at = cpu_seconds(process.pid), time.monotonic()
        output = self.run(command, timeout=300)
        cpu, elapsed = cpu_seconds(process.pid) - cpu_before, time.monotonic() - at
        done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                         output)
        succeeded, failed = int(done.group(3)), int(done.group(4)) + int(done.group(5))
        micros = sorted(int(line.split("\t")[2]) for line in log_file.read_text().splitlines() if line)
        return {
            "requests": succeeded,
            "failed": failed,
            "per_second": float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output).group(1)),
            "p50_us": quantile(micros, 0.5),
            "p99_us": quantile(micros, 0.99),
            "cpu_us_per_request": cpu * 1e6 / max(succeeded, 1),
            "server_cpu_percent": cpu / elapsed * 100,
        }

    def latency_c1(self, pg, echo, echo_port, connection, get_frame, health_frame, auth):
        log("2. latency at concurrency 1: same core and different cores, against raw TCP")
        tcp_port = free_port()
        tcp = self.start("tcp-pingpong", [self.tools / "tcp_pingpong", "server", f"127.0.0.1:{tcp_port}"])
        time.sleep(0.2)
        n = str(self.size["c1_requests"])
        placements = {"same core": ("0", "0"), "different cores": ("0", "1")}
        runs = []
        for round_ in range(self.size["rounds"]):
            for placement, (server_cpu, client_cpu) in placements.items():
                for process in (pg["process"], echo, tcp):
                    self.run(["taskset", "-a", "-p", "-c", server_cpu, str(process.pid)])
                floor = json.loads(self.run(["taskset", "-c", client_cpu, self.tools / "tcp_pingpong", "client",
                                             f"127.0.0.1:{tcp_port}", n]))
                runs.append({"round": round_, "placement": placement, "target": "TCP ping-pong",
                             "p50_us": floor["p50_us"], "p99_us": floor["p99_us"]})
                calls = {
                    "echo": (echo, f"http://127.0.0.1:{echo_port}/bench.echo.Echo/Unary", get_frame, []),
                    "Health/Check (memory)": (pg["process"], f"http://{pg['addr']}/grpc.health.v1.Health/Check",
                                              health_frame, []),
                    "GetConnection (PostgreSQL)": (
                        pg["process"], f"http://{pg['addr']}/linkgate.v1.ConnectionService/GetConnection",
                        get_frame, auth),
                }
                for name, (process, url, frame, headers) in calls.items():
                    result = self.h2load(process, url, frame, headers, ["-c", "1", "-m", "1", "-n", n],
                                         cpus=client_cpu)
                    runs.append({"round": round_, "placement": placement, "target": name,
                                 "p50_us": result["p50_us"], "p99_us": result["p99_us"]})
                    log(f"   {placement:<15} {name:<27} p50 {result['p50_us']} µs  p99 {result['p99_us']} µs"
                        f"  (TCP p50 {floor['p50_us']:.0f} µs)")
        for process in (pg["process"], echo, tcp):
            self.run(["taskset", "-a", "-p", "-c", f"0-{os.cpu_count() - 1}", str(process.pid)])
        self.stop(tcp)
        summary = {}
        for placement in placements:
            for name in ("TCP ping-pong", "echo", "Health/Check (memory)", "GetConnection (PostgreSQL)"):
                mine = [r for r in runs if r["placement"] == placement and r["target"] == name]
                summary.setdefault(placement, {})[name] = {k: median([r[k] for r in mine]) for k in ("p50_us", "p99_us")}
        self.results["latency_c1"] = {"runs": runs, "summary": summary}

    def mint(self, count, out, addr):
        """Issues `count` sandbox tokens into `out`, 3,000 at a time, analyzing `link_sessions`
        after each batch: a table this new has no statistics until autovacuum gets to it, and
        without them PostgreSQL plans each sync tick's look for due sessions as a scan of every
        session minted (the rate fell from 386 to 88 tokens a second over 12,000; analyzed
        between batches it held 640 to 970). Returns lgload's report of each batch."""
        outputs, left = [], count
        with open(out, "w") as tokens:
            while left > 0:
                part = self.work / "mint-batch.txt"
                outputs.append(self.lgload("mint", "--count", str(min(left, 3000)), "--out", part, addr=addr,
                                           key=self.key))
                tokens.write(part.read_text())
                left -= 3000
                self.psql(PG_URL, "ANALYZE link_sessions")
        return outputs

    # 3. The exchange write path against pgbench running the same statements.
    def exchange(self):
        log("3. exchange write path: ExchangePublicToken against pgbench with the same statements")
        self.capture_exchange_statements()
        # Imports and status polls of the new connections are pushed past the run, so the replica
        # does only exchanges (and what each exchange brings: audit, event tailing, announcement).
        quiet = dict(LINKGATE_SANDBOX_IMPORT_DELAY="1h", LINKGATE_SANDBOX_POLL_INTERVAL="1h")
        pg = self.serve("linkgate-exchange", PG_URL, **quiet)
        counts, rounds, unlocked = self.size["exchange_counts"], self.size["rounds"], self.size["unlocked_callers"]
        batch = (sum(counts.values()) + sum(counts[c] for c in unlocked)) * rounds
        # pgbench's tokens are issued by linkgate too (real rows), first, so its queue holds only them.
        minted = self.mint(batch, self.work / "pgbench-tokens.txt", pg["addr"])
        self.psql(PG_URL, "CREATE TABLE bench_queue AS SELECT row_number() OVER (ORDER BY id) AS n, token_hash "
                          "FROM public_tokens WHERE state = 'issued'; CREATE UNIQUE INDEX ON bench_queue (n); "
                          "CREATE SEQUENCE bench_queue_next; ANALYZE bench_queue")
        tokens = self.work / "tokens.txt"
        self.mint(batch, tokens, pg["addr"])
        # A second replica on the same database: at the callers in `unlocked_callers` the
        # exchanges are also spread over both (split by lgload), against pgbench without the lock.
        # It starts after the minting, which its sync engine's look for due link sessions (every
        # session minted, each tick) would slow.
        pg2 = self.serve("linkgate-exchange-2", PG_URL, **quiet)
        both = f"{pg['addr']},{pg2['addr']}"
        script = self.pgbench_script()
        runs, skip = [], 0
        def exchanges(addr, callers, count):
            nonlocal skip
            result = self.lgload("exchange", "--tokens", tokens, "--skip", str(skip), "--count", str(count),
                                 "--concurrency", str(callers), addr=addr, key=self.key)
            skip += count
            return result

        for round_ in range(rounds):
            for callers, count in counts.items():
                run = {"round": round_, "callers": callers, "linkgate": exchanges(pg["addr"], callers, count),
                       "pgbench": self.pgbench(script, callers, count, locked=True)}
                mine, theirs = run["linkgate"], run["pgbench"]
                log(f"   {callers:>2} callers: linkgate {mine['per_second']:.0f}/s (p99 {mine['p99_us'] / 1000:.1f} ms),"
                    f" pgbench {theirs['tps']:.0f}/s (p99 {theirs['p99_us'] / 1000:.1f} ms)")
                if callers in unlocked:
                    run["linkgate_2"] = exchanges(both, callers, count)
                    run["pgbench_unlocked"] = self.pgbench(script, callers, count, locked=False)
                    mine, theirs = run["linkgate_2"], run["pgbench_unlocked"]
                    log(f"   {callers:>2} callers: linkgate on 2 replicas {mine['per_second']:.0f}/s (p99 "
                        f"{mine['p99_us'] / 1000:.1f} ms), pgbench without the lock {theirs['tps']:.0f}/s "
                        f"(p99 {theirs['p99_us'] / 1000:.1f} ms)")
                runs.append(run)
        summary = {}
        for callers in counts:
            mine = [r for r in runs if r["callers"] == callers]
            row = {
                "linkgate_per_second": median([r["linkgate"]["per_second"] for r in mine]),
                "linkgate_p50_ms": median([r["linkgate"]["p50_us"] / 1000 for r in mine]),
                "linkgate_p99_ms": median([r["linkgate"]["p99_us"] / 1000 for r in mine]),
                "pgbench_tps": median([r["pgbench"]["tps"] for r in mine]),
                "pgbench_p50_ms": median([r["pgbench"]["p50_us"] / 1000 for r in mine]),
                "pgbench_p99_ms": median([r["pgbench"]["p99_us"] / 1000 for r in mine]),
            }
            row["ratio"] = row["linkgate_per_second"] / row["pgbench_tps"]
            if callers in unlocked:
                row.update({
                    "linkgate_2_per_second": median([r["linkgate_2"]["per_second"] for r in mine]),
                    "linkgate_2_p50_ms": median([r["linkgate_2"]["p50_us"] / 1000 for r in mine]),
                    "linkgate_2_p99_ms": median([r["linkgate_2"]["p99_us"] / 1000 for r in mine]),
                    "pgbench_unlocked_tps": median([r["pgbench_unlocked"]["tps"] for r in mine]),
                    "pgbench_unlocked_p50_ms": median([r["pgbench_unlocked"]["p50_us"] / 1000 for r in mine]),
                    "pgbench_unlocked_p99_ms": median([r["pgbench_unlocked"]["p99_us"] / 1000 for r in mine]),
                })
                row["ratio_unlocked"] = row["linkgate_per_second"] / row["pgbench_unlocked_tps"]
                row["ratio_unlocked_2"] = row["linkgate_2_per_second"] / row["pgbench_unlocked_tps"]
            summary[str(callers)] = row
        self.results["exchange"] = {
            "runs": runs, "summary": summary, "minting": minted,
            "unlocked_events_table": self.unlocked_events_table(PG_URL),
            "failures": sum(r[side]["failures"] for r in runs for side in ("linkgate", "linkgate_2") if side in r),
            "grpc_codes": {"replica 1": self.rpc_codes(pg, "ExchangePublicToken"),
                           "replica 2": self.rpc_codes(pg2, "ExchangePublicToken")},
        }
        self.stop(pg["process"])
        self.stop(pg2["process"])

    def capture_exchange_statements(self):
        """Logs every statement of one exchange on PostgreSQL and keeps them as evidence of what
        pgbench has to run. Needs the server's log file (Debian's default place) to be readable."""
        logs = sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))
        if not logs or not os.access(logs[-1], os.R_OK):
            log("   PostgreSQL's log is not readable: statements not captured")
            return
        url = f"{PG_URL}?options=-c%20log_statement%3Dall"
        # A long sync tick and event re-read keep background queries out of the capture.
        pg = self.serve("linkgate-capture", url, LINKGATE_SYNC_TICK="10m", LINKGATE_SYNC_LEASE="1h",
                        LINKGATE_EVENTS_RECHECK="1h",
                        LINKGATE_SANDBOX_IMPORT_DELAY="1h", LINKGATE_SANDBOX_POLL_INTERVAL="1h")
        tokens = self.work / "capture-token.txt"
        self.lgload("mint", "--count", "1", "--out", tokens, addr=pg["addr"], key=self.key)
        time.sleep(1)
        offset = logs[-1].stat().st_size
        self.lgload("exchange", "--tokens", tokens, "--count", "1", "--concurrency", "1", addr=pg["addr"], key=self.key)
        time.sleep(1.5)  # audit records are written in batches, shortly after the call
        with open(logs[-1], "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        self.results_dir.mkdir(exist_ok=True)
        wanted = ("execute", "statement:", "parameters:")
        captured = [line for line in text.splitlines() if DB_NAME in line and any(w in line for w in wanted)]
        (self.results_dir / "exchange-statements.log").write_text("\n".join(captured) + "\n")
        self.stop(pg["process"])

    def pgbench_script(self):
        """The exchange's statements for pgbench, with values like those linkgate binds."""
        tenant = self.psql(PG_URL, "SELECT id FROM tenants WHERE name = 'bench'").strip()
        snapshot = self.psql(PG_URL, "SELECT snapshot FROM connections ORDER BY id DESC LIMIT 1").strip()
        handle = self.psql(PG_URL, "SELECT encode(handle_sealed, 'hex') FROM connections ORDER BY id DESC LIMIT 1").strip()
        script = (BENCH / "exchange.pgbench.sql").read_text()
        script = script.replace("{tenant}", tenant).replace("{snapshot}", snapshot.replace("'", "''"))
        script = script.replace("{handle}", handle).replace("{unlocked_events}", self.unlocked_events_table(PG_URL))
        (self.results_dir / "exchange.pgbench.sql").write_text(script)
        path = self.work / "exchange.pgbench.sql"
        path.write_text(script)
        return path

    def unlocked_events_table(self, url):
        """Where a writer appends an event without the event lock: the inbox, where the schema
        has one; else connection_events itself, the same row at the same physical cost."""
        inbox = self.psql(url, "SELECT to_regclass('connection_event_inbox') IS NOT NULL").strip() == "t"
        return "connection_event_inbox" if inbox else "connection_events"

    def pgbench(self, script, clients, count, locked):
        """pgbench over TCP like linkgate, prepared statements like sqlx, one log line per transaction;
        the event appended under the event lock or without it (`locked`, the script's \\if).
        One thread per client: the event lock is held across three round trips and the commit, so
        a holder waiting behind another client of its thread would lower the ceiling."""
        logs = self.work / "pgbench"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        output = self.run(["pgbench", "-n", "-r", "-h", "127.0.0.1", "-U", "postgres", "-M", "prepared",
                           "-c", str(clients), "-j", str(clients), "-t", str(count // clients),
                           "-D", f"locked={int(locked)}",
                           "-f", script, "-l", "--log-prefix", logs / "tx", DB_NAME], timeout=600)
        micros = sorted(int(line.split()[2]) for f in logs.iterdir() for line in f.read_text().splitlines())
        return {
            "transactions": len(micros),
            "failed": int(m.group(1)) if (m := re.search(r"number of failed transactions: (\d+)", output)) else 0,
            "tps": float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1)),
            "p50_us": quantile(micros, 0.5),
            "p99_us": quantile(micros, 0.99),
            # Per-statement latencies (-r), to see where the transaction's time goes.
            "statement_latencies": output[output.find("statement latencies"):].strip(),
        }

    # 9. Connection events appended per second cluster-wide: this build against the baseline that
    # appends every event under the cluster-wide event lock.
    def events(self):
        size = self.size["events"]
        builds = {"this build": self.linkgate}
        baseline = self.baseline()
        if baseline:
            builds[f"baseline {BASELINE_COMMIT} (event lock)"] = baseline
        log(f"9. connection events: {size['writers']} writers of consent expiries over 2 replicas, "
            f"{', '.join(builds)}")
        setups = {}
        for n, (build, binary) in enumerate(builds.items()):
            # A database per build: each binary migrates its own schema.
            url, key = self.create_database(f"{DB_NAME}_events_{n}", binary)
            # The sync engine looks for due work once, at start, and not again within the run: each
            # call makes its connection due at once, and a poll holding the connection's lease would
            # make the next call wait for it, so polls are kept out and the writers' own appends
            # are what is measured.
            replicas = [self.serve(f"linkgate-events-{n}-{i}", url, binary=binary, LINKGATE_SYNC_TICK="10m",
                                   LINKGATE_SYNC_LEASE="1h", LINKGATE_SANDBOX_IMPORT_DELAY="1h",
                                   LINKGATE_SANDBOX_POLL_INTERVAL="1h")
                        for i in range(2)]
            connections = self.work / f"events-connections-{n}.txt"
            self.lgload("link", "--count", str(size["writers"]), "--out", connections, addr=replicas[0]["addr"],
                        key=key)
            setups[build] = dict(url=url, key=key, replicas=replicas, connections=connections)
        runs = []
        for round_ in range(self.size["rounds"]):
            # Alternating which build goes first, so drift in the machine's load touches both.
            for build in list(setups) if round_ % 2 == 0 else list(setups)[::-1]:
                run = self.event_window(setups[build], size["seconds"])
                runs.append({"round": round_, "build": build, **run})
                log(f"   {build:<28} {run['events_per_second']:>7.0f} events/s ({run['events']:,} events, "
                    f"{run['writers']['failures']} failed calls, log settled {run['settle_lag_s']:.2f} s after "
                    f"the writers, p99 call {run['writers']['p99_us'] / 1000:.1f} ms)")
        summary = {}
        for build in setups:
            mine = [r for r in runs if r["build"] == build]
            summary[build] = {
                "events_per_second": median([r["events_per_second"] for r in mine]),
                "settle_lag_s": median([r["settle_lag_s"] for r in mine]),
                "calls_per_second": median([r["writers"]["per_second"] for r in mine]),
                "call_p50_ms": median([r["writers"]["p50_us"] / 1000 for r in mine]),
                "call_p99_ms": median([r["writers"]["p99_us"] / 1000 for r in mine]),
            }
        if baseline:
            summary["ratio"] = (summary["this build"]["events_per_second"]
                                / summary[f"baseline {BASELINE_COMMIT} (event lock)"]["events_per_second"])
        self.results["events"] = {
            "runs": runs, "summary": summary, "writers": size["writers"], "replicas": 2,
            "window_seconds": size["seconds"], "baseline_commit": BASELINE_COMMIT if baseline else None,
            "grpc_codes": {build: [self.rpc_codes(r, "SetConsentExpiry") for r in setup["replicas"]]
                           for build, setup in setups.items()},
        }
        for setup in setups.values():
            for replica in setup["replicas"]:
                self.stop(replica["process"])

    def event_window(self, setup, seconds):
        """One timed window of the writers, the events counted in connection_events once the log
        has settled before and after it."""
        before, _ = self.settled_events(setup["url"])
        writers = self.lgload("events", "--connections", setup["connections"], "--seconds", str(seconds),
                              addr=",".join(r["addr"] for r in setup["replicas"]), key=setup["key"])
        after, lag = self.settled_events(setup["url"])
        events = after - before
        # Events still on their way into the log when the writers stopped count against the rate.
        return {"writers": writers, "events": events, "settle_lag_s": lag,
                "events_per_second": events / (writers["seconds"] + lag)}

    def settled_events(self, url, quiet=1.0, limit=60):
        """connection_events' row count once the log has settled: the event inbox (where the schema
        has one) empty and the count unchanged for `quiet` seconds, at most `limit` seconds.
        Returns the count and how long after the call it last grew."""
        inbox = self.unlocked_events_table(url) == "connection_event_inbox"
        query = ("SELECT (SELECT count(*) FROM connection_events), "
                 + ("(SELECT count(*) FROM connection_event_inbox)" if inbox else "0"))
        started = time.monotonic()
        count, grew_at, seen_at = None, started, started
        while time.monotonic() - started < limit:
            now_count, waiting = (int(x) for x in self.psql(url, query).strip().split("|"))
            now = time.monotonic()
            if now_count != count:
                if count is not None:
                    grew_at = now
                count, seen_at = now_count, now
            elif waiting == 0 and now - seen_at >= quiet:
                return count, grew_at - started
            time.sleep(0.1)
        raise RuntimeError(f"the event log did not settle within {limit} s")

    # 5 and 6. Upstream fan-in against pollers; gateway overhead against the direct upstream call.
    def fan_in_and_overhead(self):
        log("5. upstream fan-in: N watchers on linkgate against N integrators polling Deck every 5 s")
        # Two mocks, so each side's calls are counted apart: one is linkgate's upstream, the other
        # is polled directly. linkgate's mock withholds data, so its connection stays PENDING and
        # linkgate keeps polling it at Deck's 5 s, the case where integrators would poll too.
        mocks = {}
        for side, delay in (("linkgate", "1h"), ("direct", "0s")):
            port = free_port()
            process = self.start(f"deck-{side}", [self.mock, "deck", "--addr", f"127.0.0.1:{port}",
                                                  "--extraction-delay", delay])
            mocks[side] = dict(process=process, base=f"http://127.0.0.1:{port}/api/v1",
                               admin=f"http://127.0.0.1:{port}/__admin")
        time.sleep(0.3)
        deck = self.serve("linkgate-deck", f"sqlite://{self.work / 'deck.db'}",
                          LINKGATE_DECK_BASE_URL=mocks["linkgate"]["base"], LINKGATE_DECK_POLL_INTERVAL="5s",
                          **DECK_ENV)
        connection = self.lgload("deck-connection", addr=deck["addr"])["connection_id"]
        rows = []
        for n in self.size["fanin_ns"]:
            before = {side: self.mock_calls(m) for side, m in mocks.items()}
            at = time.monotonic()
            seconds = str(self.size["fanin_seconds"])
            watchers = subprocess.Popen([self.tools / "lgload", "--addr", deck["addr"], "watch", "--connection",
                                         connection, "--count", str(n), "--seconds", seconds],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.processes.append(watchers)
            pollers = self.lgload("poll", "--base", mocks["direct"]["base"], "--count", str(n), "--seconds", seconds)
            watched = json.loads(watchers.communicate(timeout=120)[0].strip().splitlines()[-1])
            self.processes.remove(watchers)
            elapsed = time.monotonic() - at
            after = {side: self.mock_calls(m) for side, m in mocks.items()}
            linkgate_calls = after["linkgate"]["total"] - before["linkgate"]["total"]
            direct_calls = (after["direct"]["calls"].get("/connection/context", 0)
                            - before["direct"]["calls"].get("/connection/context", 0))
            rows.append({
                "n": n, "seconds": elapsed, "watchers_open": watched["watchers"], "pollers": pollers["pollers"],
                "poll_failures": pollers["failures"],
                "linkgate_calls": linkgate_calls, "direct_calls": direct_calls,
                # linkgate polls all along, so its count covers the whole elapsed time; the
                # integrators poll only during their window.
                "linkgate_per_minute": linkgate_calls * 60 / elapsed,
                "direct_per_minute": direct_calls * 60 / self.size["fanin_seconds"],
                "linkgate_endpoints": {k: v - before["linkgate"]["calls"].get(k, 0)
                                       for k, v in after["linkgate"]["calls"].items()
                                       if v != before["linkgate"]["calls"].get(k, 0)},
            })
            log(f"   N={n:<5} linkgate {rows[-1]['linkgate_per_minute']:.0f}/min, "
                f"direct pollers {rows[-1]['direct_per_minute']:.0f}/min")
        self.results["fan_in"] = rows

        log("6. gateway overhead: ListAccounts through linkgate against the direct upstream call")
        urllib.request.urlopen(urllib.request.Request(f"{mocks['linkgate']['admin']}/extraction/finish",
                                                      method="POST"), timeout=5)
        self.lgload("await-ready", "--connection", connection, addr=deck["addr"])
        access_token = self.lgload("deck-access-token", "--base", mocks["direct"]["base"])["access_token"]
        list_frame = self.work / "list.bin"
        list_frame.write_bytes(grpc_frame(string_field_1(connection)))
        upstream_body = self.work / "upstream.json"
        upstream_body.write_text(json.dumps({"access_token": access_token}))
        n = ["-c", "1", "-m", "1", "-n", str(self.size["overhead_requests"])]
        runs = []
        for round_ in range(self.size["rounds"]):
            through = self.h2load(deck["process"], f"http://{deck['addr']}/linkgate.v1.AccountService/ListAccounts",
                                  list_frame, [], n)
            direct = self.h2load_http1(mocks["direct"]["process"], f"{mocks['direct']['base']}/connection/accounts",
                                       upstream_body, n)
            runs.append({"round": round_, "linkgate": through, "direct": direct})
        summary = {
            side: {k: median([r[side][k] for r in runs]) for k in ("p50_us", "p99_us")}
            for side in ("linkgate", "direct")
        }
        summary["added_p50_us"] = summary["linkgate"]["p50_us"] - summary["direct"]["p50_us"]
        summary["added_p99_us"] = summary["linkgate"]["p99_us"] - summary["direct"]["p99_us"]
        self.results["overhead"] = {"runs": runs, "summary": summary,
                                    "grpc_codes": self.rpc_codes(deck, "ListAccounts")}
        self.stop(deck["process"])
        for mock in mocks.values():
            self.stop(mock["process"])

    def mock_calls(self, mock):
        with urllib.request.urlopen(f"{mock['admin']}/calls", timeout=5) as response:
            return json.loads(response.read())

    def h2load_http1(self, process, url, body, shape):
        """The upstream call as a direct integrator makes it: a JSON POST over HTTP/1.1."""
        headers = ["-H", "content-type: application/json", "-H", "x-deck-client-id: test-client",
                   "-H", "x-deck-secret: test-secret", "--h1"]
        return self.h2load_raw(process, url, body, headers, shape)

    # 8. The change feed: a refresh's diff against the changed rows written alone; draining the
    # feed from an empty cursor against listing the same rows.
    def feed(self):
        size = self.size["feed"]
        log(f"8. change feed: a 1 % refresh of {size['transactions']:,} transactions, then draining the feed "
            "against ListAccountTransactions")
        # The sandbox imports its own accounts and transactions once; from then on only lgfeed
        # changes these connections' data (their next refresh is a day away).
        pg = self.serve("linkgate-feed", PG_URL, LINKGATE_SANDBOX_REFRESH_INTERVAL="24h")
        connection = self.lgload("sandbox-connection", addr=pg["addr"], key=self.key)["connection_id"]
        twin = self.lgload("sandbox-connection", addr=pg["addr"], key=self.key)["connection_id"]
        tenant = self.psql(PG_URL, "SELECT id FROM tenants WHERE name = 'bench'").strip()
        output = self.run([self.tools / "lgfeed", "--database-url", PG_URL, "--tenant", tenant,
                           "--connection", connection, "--twin", twin,
                           "--transactions", str(size["transactions"]), "--added", str(size["added"]),
                           "--modified", str(size["modified"]), "--removed", str(size["removed"]),
                           "--rounds", str(self.size["rounds"])], timeout=1800)
        refresh = json.loads(output.strip().splitlines()[-1])
        for r in refresh["rounds"]:
            log(f"   refresh round {r['round']}: diff {r['diff_ms']:.1f} ms, changed rows alone "
                f"{r['baseline_ms']:.1f} ms, unchanged import {r['unchanged_ms']:.1f} ms (reading "
                f"{r['read_ms']:.1f} ms, digesting {r['digest_ms']:.1f} ms)")
        drains = []
        for round_ in range(self.size["rounds"]):
            for via in ("sync", "list") if round_ % 2 == 0 else ("list", "sync"):
                run = self.lgload("drain", "--connection", connection, "--via", via, "--page-size",
                                  str(size["page_size"]), addr=pg["addr"], key=self.key)
                drains.append({"round": round_, "via": via, **run})
                log(f"   {via:<4} {run['rows']:,} rows in {run['seconds']:.2f} s: {run['rows_per_second']:,.0f} rows/s")
        rounds = refresh["rounds"]
        summary = {
            "diff_ms": median([r["diff_ms"] for r in rounds]),
            "baseline_ms": median([r["baseline_ms"] for r in rounds]),
            "unchanged_ms": median([r["unchanged_ms"] for r in rounds]),
            "read_ms": median([r["read_ms"] for r in rounds]),
            "digest_ms": median([r["digest_ms"] for r in rounds]),
            "diff_ratio": median([r["diff_ms"] / r["baseline_ms"] for r in rounds]),
        }
        for via in ("sync", "list"):
            mine = [d for d in drains if d["via"] == via]
            summary[via] = {k: median([d[k] for d in mine]) for k in
                            ("rows", "seconds", "rows_per_second", "page_p50_us", "page_p99_us")}
        summary["drain_ratio"] = summary["sync"]["rows_per_second"] / summary["list"]["rows_per_second"]
        self.results["feed"] = {
            "refresh": refresh, "drains": drains, "summary": summary,
            "grpc_codes": {m: self.rpc_codes(pg, m) for m in ("SyncAccountTransactions", "ListAccountTransactions")},
        }
        self.stop(pg["process"])

    # 4. Streams: the existing watch-stream benchmark, run as its README describes.
    def streams(self):
        log(f"4. {self.size['watchers']} WatchConnection streams (examples/bench_streams), SQLite and PostgreSQL")
        self.results["streams"] = self.stream_run([])
        # On PostgreSQL every event passes through the sequencer's inbox before the tailer reads it.
        # The example migrates the empty database itself and runs in dev mode (no tenant).
        name = f"{DB_NAME}_streams"
        self.psql(PG_ADMIN_URL, f"CREATE DATABASE {name}")
        self.databases.append(name)
        url = f"postgres://postgres@127.0.0.1:5432/{name}"
        self.results["streams_postgres"] = self.stream_run(["20ms", url])

    def stream_run(self, extra_args):
        env = {"LINKGATE_ENCRYPTION_KEY": self.encryption_key}
        output = self.run([self.streams_example, str(self.size["watchers"]), *extra_args], env=env, timeout=600)
        figures = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
        return {**figures, "output": output}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, one round (about 2.5 min)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--only", type=lambda text: text.split(","), default=[],
                        help="run only these measurements (start, unary, exchange, fan-in, streams, feed, "
                             "events); the figures go to a JSON file beside the work directory, not to results/")
    parser.add_argument("--no-baseline", action="store_true",
                        help=f"events: leave out the baseline row (linkgate at {BASELINE_COMMIT}, with the event "
                             "lock), which is built once into the cache when absent")
    suite = Suite(parser.parse_args())
    # SIGTERM and Ctrl-C end the run through the same cleanup as a normal exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    succeeded = False
    try:
        suite.main()
        succeeded = True
    finally:
        suite.cleanup(succeeded)


if __name__ == "__main__":
    main()
