"""Writes results.md and the plots from a run's results (as stored in results.json).

`python3 bench/report.py bench/results/results.json` redraws them from a stored run.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The goals of the issue, each checked against the figures of the same run.
GOALS = {
    "unary_throughput": "GetConnection ≥ 0.5 × echo's throughput at saturation",
    "unary_cpu": "GetConnection CPU per request ≤ 2 × echo's (at a fixed rate)",
    "data_reads": "ListAccounts and ListAccountTransactions' first page ≥ 0.3 × echo's throughput at saturation "
                  "and ≤ 4 × its CPU per request",
    "latency_c1": "p50 ≤ TCP floor + 60 µs for a call served from memory",
    "exchange": "ExchangePublicToken ≥ 0.7 × pgbench's TPS at 8 callers",
    "exchange_unlocked": "ExchangePublicToken at 32 callers on 2 replicas ≥ 0.6 × pgbench's TPS without the event lock",
    "streams_p99": "10,000 streams: delivery p99 < 50 ms",
    "streams_rss": "10,000 streams: ≤ 16 KiB per watcher",
    "streams_p99_postgres": "10,000 streams on PostgreSQL: delivery p99 < 50 ms",
    "fan_in": "linkgate's upstream calls independent of N",
    "overhead": "added latency < 1 ms at p50",
    "start": "start to SERVING < 200 ms",
    "idle_rss": "idle RSS < 40 MiB",
    "feed_diff": "a 1 % refresh of 100,000 transactions: diff ≤ 2 × writing the changed rows alone",
    "feed_drain": "draining the feed from empty ≥ 0.8 × ListAccountTransactions' rows/s (page size 500)",
    "events": "connection events appended per second, 2 replicas and 32 writers, ≥ 3 × the baseline's with the "
              "event lock",
}


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def verdict(ok):
    return "met" if ok else "**missed**"


def host_speed(results):
    """The anchors' own figures: hosts of one kind differ, and the unary goals are ratios to these."""
    echo = results["unary"]["summary"]["saturation"]["echo"]
    one_core = results["latency_c1"]["summary"]["same core"]
    over_tcp = one_core["echo"]["p50_us"] - one_core["TCP ping-pong"]["p50_us"]
    return (f"Host speed, to compare runs across hosts: bare tonic answers {fmt(echo['per_second'])}/s at "
            f"saturation ({echo['cpu_us_per_request']:.1f} CPU-µs per call) and sits {over_tcp:.0f} µs above "
            "the TCP floor at concurrency 1 on one core. The unary goals are ratios to, or offsets from, "
            "these figures, so a slower host moves their verdicts.")


def write(results, folder: Path):
    lines, checks = [], []
    m = results["machine"]
    lines += [
        "# linkgate benchmark results",
        "",
        f"Run {results['started_at']} → {results['finished_at']} ({results['duration_seconds']:.0f} s, "
        f"{results['mode']} mode), commit `{m['git_commit'][:12]}`{' (with local changes)' if m['git_dirty'] else ''}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, Linux {m['kernel']}, "
        f"PostgreSQL {m['postgres']}, h2load {m['h2load']}, tonic {m['tonic']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}.",
        "",
        "Every figure is the median of the run's rounds, measured side by side with its anchor in the same "
        "run. Compare runs by their ratios; absolute times move with the machine's other load.",
        "",
        host_speed(results),
        "",
    ]

    u = results["unary"]["summary"]
    lines += ["## 1. Unary cost against bare tonic (h2load, 4 connections)", "",
              "| offered load | target | req/s | p50 µs | p99 µs | server CPU-µs/req | ratio of echo: req/s, CPU/req |",
              "|---|---|---|---|---|---|---|"]
    for load, targets in u.items():
        echo = targets["echo"]
        for name, t in targets.items():
            ratio = "" if name == "echo" else (
                f"{t['per_second'] / echo['per_second']:.2f}, {t['cpu_us_per_request'] / echo['cpu_us_per_request']:.2f}")
            lines.append(f"| {load} | {name} | {fmt(t['per_second'])} | {fmt(t['p50_us'])} | {fmt(t['p99_us'])} | "
                         f"{fmt(t['cpu_us_per_request'], 1)} | {ratio} |")
    codes = results["unary"]["grpc_codes"]
    lines += ["", "gRPC status codes counted by linkgate itself (h2load sees only HTTP 200): "
              + "; ".join(f"{method} {json.dumps(c)}" for method, c in codes.items()), ""]
    sat = u["saturation"]
    throughput = sat["GetConnection"]["per_second"] / sat["echo"]["per_second"]
    checks.append(("unary_throughput", f"{throughput:.2f} × echo", throughput >= 0.5))
    # CPU per request is compared at the highest fixed rate both servers sustain (≥ 95 % of the
    # offered rate): there the replica's background work (sync tick, readiness pings) weighs least.
    def sustained(load):
        offered = float(load.rstrip("/s"))
        return all(u[load][t]["per_second"] >= 0.95 * offered for t in ("echo", "GetConnection"))

    fixed = [load for load in u if load != "saturation" and sustained(load)][-1:] or [next(iter(u))]
    fixed = fixed[0]
    cpu = u[fixed]["GetConnection"]["cpu_us_per_request"] / u[fixed]["echo"]["cpu_us_per_request"]
    checks.append(("unary_cpu", f"{cpu:.2f} × echo at {fixed}", cpu <= 2))
    reads = [name for name in ("ListAccounts", "ListAccountTransactions") if name in sat]
    if reads:
        ratios = {name: (sat[name]["per_second"] / sat["echo"]["per_second"],
                         u[fixed][name]["cpu_us_per_request"] / u[fixed]["echo"]["cpu_us_per_request"])
                  for name in reads}
        checks.append(("data_reads", "; ".join(f"{name} {t:.2f} × echo's req/s, {c:.2f} × its CPU"
                                                for name, (t, c) in ratios.items()),
                       all(t >= 0.3 and c <= 4 for t, c in ratios.values())))

    c1 = results["latency_c1"]["summary"]
    lines += ["## 2. Latency at concurrency 1 (h2load -c1 -m1; TCP: 64-byte ping-pong)", "",
              "| placement | call | p50 µs | p99 µs | p50 − TCP p50 |", "|---|---|---|---|---|"]
    for placement, calls in c1.items():
        floor = calls["TCP ping-pong"]["p50_us"]
        for name, t in calls.items():
            lines.append(f"| {placement} | {name} | {fmt(t['p50_us'], 1)} | {fmt(t['p99_us'], 1)} | "
                         f"{'' if name == 'TCP ping-pong' else fmt(t['p50_us'] - floor, 1)} |")
    gaps = {p: calls["Health/Check (memory)"]["p50_us"] - calls["TCP ping-pong"]["p50_us"] for p, calls in c1.items()}
    checks.append(("latency_c1", ", ".join(f"{p}: +{g:.0f} µs" for p, g in gaps.items()),
                   all(g <= 60 for g in gaps.values())))
    lines.append("")

    e = results["exchange"]
    lines += ["## 3. Exchange write path against pgbench running the same statements", "",
              "| callers | linkgate exchanges/s | p50 ms | p99 ms | pgbench TPS | p50 ms | p99 ms | ratio |",
              "|---|---|---|---|---|---|---|---|"]
    for c, row in e["summary"].items():
        lines.append(f"| {c} | {fmt(row['linkgate_per_second'])} | {fmt(row['linkgate_p50_ms'], 2)} | "
                     f"{fmt(row['linkgate_p99_ms'], 2)} | {fmt(row['pgbench_tps'])} | {fmt(row['pgbench_p50_ms'], 2)} | "
                     f"{fmt(row['pgbench_p99_ms'], 2)} | {row['ratio']:.2f} |")
    lines += ["", f"Failed exchanges: {e['failures']}. The statements pgbench runs are in `exchange.pgbench.sql`; "
              "those linkgate sent for one exchange, captured from PostgreSQL's log, are in "
              "`exchange-statements.log`.", ""]
    eight = next(r for r in e["runs"] if r["callers"] == 8)
    lines += ["pgbench's own per-statement latencies at 8 callers (first round), to see where a transaction "
              "waits:", "", "```", eight["pgbench"]["statement_latencies"], "```", ""]
    at8 = e["summary"]["8"]["ratio"]
    checks.append(("exchange", f"{at8:.2f} × pgbench at 8", at8 >= 0.7))
    unlocked = {c: row for c, row in e["summary"].items() if "pgbench_unlocked_tps" in row}
    if unlocked:
        lines += ["Without the event lock: pgbench appending the event with no lock (into "
                  f"`{e['unlocked_events_table']}`), against linkgate on one replica and on two sharing the "
                  "callers:", "",
                  "| callers | pgbench without the lock, TPS | p50 ms | p99 ms | linkgate, 1 replica /s | ratio | "
                  "linkgate, 2 replicas /s | p50 ms | p99 ms | ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c, row in unlocked.items():
            lines.append(f"| {c} | {fmt(row['pgbench_unlocked_tps'])} | {fmt(row['pgbench_unlocked_p50_ms'], 2)} | "
                         f"{fmt(row['pgbench_unlocked_p99_ms'], 2)} | {fmt(row['linkgate_per_second'])} | "
                         f"{row['ratio_unlocked']:.2f} | {fmt(row['linkgate_2_per_second'])} | "
                         f"{fmt(row['linkgate_2_p50_ms'], 2)} | {fmt(row['linkgate_2_p99_ms'], 2)} | "
                         f"{row['ratio_unlocked_2']:.2f} |")
        lines.append("")
        if "32" in unlocked:
            at32 = unlocked["32"]
            checks.append(("exchange_unlocked", f"{at32['ratio_unlocked_2']:.2f} × on 2 replicas "
                           f"({at32['ratio_unlocked']:.2f} × on 1)", at32["ratio_unlocked_2"] >= 0.6))

    s = results["streams"]
    lines += ["## 4. Watch streams (examples/bench_streams)", "",
              f"{s['watchers']:,} streams: deliveries {s['deliveries']:,} of {s['expected_deliveries']:,}, "
              f"commit-to-client p50 {fmt(s['latency_ms_p50'], 1)} ms, p99 {fmt(s['latency_ms_p99'], 1)} ms, "
              f"RSS per watcher {fmt(s['rss_per_watcher_kib'], 1)} KiB, idle CPU {fmt(s['idle_cpu_percent'], 1)} % "
              "of one core.", ""]
    scale = "" if s["watchers"] == 10_000 else f" (at {s['watchers']:,}, not 10,000)"
    checks.append(("streams_p99", f"{s['latency_ms_p99']:.1f} ms{scale}", s["latency_ms_p99"] < 50))
    checks.append(("streams_rss", f"{s['rss_per_watcher_kib']:.1f} KiB{scale}", s["rss_per_watcher_kib"] <= 16))
    sp = results.get("streams_postgres")
    if sp:
        lines += [f"The same on PostgreSQL (every event through the sequencer's inbox): commit-to-client p50 "
                  f"{fmt(sp['latency_ms_p50'], 1)} ms, p99 {fmt(sp['latency_ms_p99'], 1)} ms, deliveries "
                  f"{sp['deliveries']:,} of {sp['expected_deliveries']:,}, RSS per watcher "
                  f"{fmt(sp['rss_per_watcher_kib'], 1)} KiB.", ""]
        checks.append(("streams_p99_postgres", f"{sp['latency_ms_p99']:.1f} ms{scale}", sp["latency_ms_p99"] < 50))

    f = results["fan_in"]
    lines += ["## 5. Upstream fan-in (Deck mock call counts, scaled to a minute)", "",
              "| N | linkgate: N watchers, upstream calls/min | direct: N pollers every 5 s, calls/min | elapsed s |",
              "|---|---|---|---|"]
    for row in f:
        lines.append(f"| {row['n']} | {fmt(row['linkgate_per_minute'])} | {fmt(row['direct_per_minute'])} | "
                     f"{row['seconds']:.0f} |")
    counts = [row["linkgate_per_minute"] for row in f]
    # Independent of N: the spread across N stays within one poll per window of the smallest.
    window_poll = 60 / f[0]["seconds"]
    flat = max(counts) - min(counts) <= max(window_poll * 2, 0.25 * min(counts))
    lines += ["", "linkgate's calls by endpoint, per N: "
              + "; ".join(f"N={row['n']} {json.dumps(row['linkgate_endpoints'])}" for row in f), ""]
    checks.append(("fan_in", f"{min(counts):.0f}–{max(counts):.0f}/min for N = "
                   f"{', '.join(str(r['n']) for r in f)}", flat))

    o = results["overhead"]["summary"]
    lines += ["## 6. Gateway overhead (concurrency 1)", "",
              "| path | p50 µs | p99 µs |", "|---|---|---|",
              f"| ListAccounts through linkgate (gRPC, served from its store) | {fmt(o['linkgate']['p50_us'])} | "
              f"{fmt(o['linkgate']['p99_us'])} |",
              f"| the same accounts straight from the Deck mock (POST /connection/accounts, HTTP/1.1) | "
              f"{fmt(o['direct']['p50_us'])} | {fmt(o['direct']['p99_us'])} |",
              f"| difference | {fmt(o['added_p50_us'])} | {fmt(o['added_p99_us'])} |", "",
              f"ListAccounts status codes: {json.dumps(results['overhead']['grpc_codes'])}.", ""]
    checks.append(("overhead", f"{o['added_p50_us']:+.0f} µs at p50", o["added_p50_us"] < 1000))

    st = results["start_idle"]
    lines += ["## 7. Start and idle", "", "| backend | start → SERVING, median ms | first start ms | idle RSS MiB |",
              "|---|---|---|---|"]
    for backend, row in st.items():
        name = f"{backend} (diagnostic)" if row["diagnostic"] else backend
        lines.append(f"| {name} | {fmt(row['serving_ms_median'], 1)} | {fmt(row['first_start_ms'], 1)} | "
                     f"{fmt(row['idle_rss_mib_median'], 1)} |")
    lines += ["", "The diagnostic row runs the same PostgreSQL without TLS; the default `sslmode=prefer` "
              "negotiates TLS even on loopback, and readiness waits for the first database connection.", ""]
    deployed = {b: r for b, r in st.items() if not r["diagnostic"]}
    checks.append(("start", ", ".join(f"{b} {r['serving_ms_median']:.0f} ms" for b, r in deployed.items()),
                   all(r["serving_ms_median"] < 200 for r in deployed.values())))
    checks.append(("idle_rss", ", ".join(f"{b} {r['idle_rss_mib_median']:.1f} MiB" for b, r in deployed.items()),
                   all(r["idle_rss_mib_median"] < 40 for r in deployed.values())))

    fd = results["feed"]
    refresh, fs = fd["refresh"], fd["summary"]
    changes = refresh["changes"]
    lines += [f"## 8. Change feed ({refresh['transactions']:,} transactions; each round adds {changes['added']}, "
              f"modifies {changes['modified']}, removes {changes['removed']})", "",
              "| round | refresh: diff and store, ms | the changed rows written alone, ms | ratio | "
              "the same import again (nothing changed), ms | of which: reading the stored digests, ms | "
              "digesting the import, ms |", "|---|---|---|---|---|---|---|"]
    for r in refresh["rounds"]:
        lines.append(f"| {r['round']} | {fmt(r['diff_ms'], 1)} | {fmt(r['baseline_ms'], 1)} | "
                     f"{r['diff_ms'] / r['baseline_ms']:.2f} | {fmt(r['unchanged_ms'], 1)} | {fmt(r['read_ms'], 1)} | "
                     f"{fmt(r['digest_ms'], 1)} |")
    last = refresh["rounds"][-1]
    lines += ["", f"The import holds {last['digested_records']:,} records; {last['stored_digests']:,} stored digests "
              "(tombstones included) are read. The rest of the unchanged import is planning (comparing, matching, "
              "dropping the digested records) and the connection's save. Loading each connection through the same "
              "path (the first import): " + ", ".join(f"{s:.1f} s" for s in refresh["seed_seconds"]) + ".", "",
              "| read, page size 500 | rows | seconds | rows/s | page p50 ms | page p99 ms |",
              "|---|---|---|---|---|---|"]
    for via, name in (("sync", "SyncAccountTransactions from an empty cursor"), ("list", "ListAccountTransactions")):
        row = fs[via]
        lines.append(f"| {name} | {fmt(row['rows'])} | {fmt(row['seconds'], 2)} | {fmt(row['rows_per_second'])} | "
                     f"{fmt(row['page_p50_us'] / 1000, 1)} | {fmt(row['page_p99_us'] / 1000, 1)} |")
    lines += ["", "Status codes: " + "; ".join(f"{m} {json.dumps(c)}" for m, c in fd["grpc_codes"].items()), ""]
    checks.append(("feed_diff", f"{fs['diff_ratio']:.2f} × ({fs['diff_ms']:.0f} ms against {fs['baseline_ms']:.0f} ms)",
                   fs["diff_ratio"] <= 2))
    checks.append(("feed_drain", f"{fs['drain_ratio']:.2f} × ({fs['sync']['rows_per_second']:,.0f} against "
                   f"{fs['list']['rows_per_second']:,.0f} rows/s)", fs["drain_ratio"] >= 0.8))

    if "events" in results:
        ev = results["events"]
        lines += [f"## 9. Connection events appended per second ({ev['replicas']} replicas, {ev['writers']} writers "
                  f"of SetConsentExpiry, {ev['window_seconds']} s windows)", "",
                  "| build | events/s cluster-wide | calls/s | call p50 ms | call p99 ms | log settled after the "
                  "writers, s |", "|---|---|---|---|---|---|"]
        builds = {b: row for b, row in ev["summary"].items() if b != "ratio"}
        for build, row in builds.items():
            lines.append(f"| {build} | {fmt(row['events_per_second'])} | {fmt(row['calls_per_second'])} | "
                         f"{fmt(row['call_p50_ms'], 2)} | {fmt(row['call_p99_ms'], 2)} | {row['settle_lag_s']:.2f} |")
        lines += ["", "Status codes: " + "; ".join(f"{b} {json.dumps(c)}" for b, c in ev["grpc_codes"].items()), ""]
        if "ratio" in ev["summary"]:
            checks.append(("events", f"{ev['summary']['ratio']:.2f} × the baseline", ev["summary"]["ratio"] >= 3))

    summary = ["## Goals", "", "| goal | this run | verdict |", "|---|---|---|"]
    summary += [f"| {GOALS[key]} | {figure} | {verdict(ok)} |" for key, figure, ok in checks]
    head = lines[:7]
    (folder / "results.md").write_text("\n".join(head + summary + [""] + lines[7:]) + "\n")
    plot(results, folder)


def plot(results, folder: Path):
    u = results["unary"]["summary"]
    loads = list(u)
    targets = list(next(iter(u.values())))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name in targets:
        axes[0].plot(loads, [u[l][name]["per_second"] for l in loads], marker="o", label=name)
        axes[1].plot(loads, [u[l][name]["cpu_us_per_request"] for l in loads], marker="o", label=name)
        axes[2].plot(loads, [u[l][name]["p99_us"] / 1000 for l in loads], marker="o", label=name)
    for ax, title in zip(axes, ("achieved req/s", "server CPU-µs per request", "p99 latency, ms")):
        ax.set_title(title)
        ax.set_xlabel("offered load")
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend()
    fig.suptitle("1. Unary calls: linkgate (PostgreSQL) against a bare tonic echo server")
    fig.tight_layout()
    fig.savefig(folder / "unary.png", dpi=110)
    plt.close(fig)

    c1 = results["latency_c1"]["summary"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = list(next(iter(c1.values())))
    width = 0.8 / len(c1)
    for i, (placement, calls) in enumerate(c1.items()):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [calls[n]["p50_us"] for n in names], width, label=f"{placement} p50")
        ax.scatter(xs, [calls[n]["p99_us"] for n in names], color="black", marker="_", s=200,
                   label="p99" if i == 0 else None)
    ax.set_xticks([j + width * (len(c1) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylabel("µs (log scale)")
    ax.set_yscale("log")
    ax.set_title("2. Round trip at concurrency 1, against loopback TCP")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "latency_c1.png", dpi=110)
    plt.close(fig)

    e = results["exchange"]["summary"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    callers = list(e)
    ax.plot(callers, [e[c]["pgbench_tps"] for c in callers], marker="o", label="pgbench, same statements (event lock)")
    ax.plot(callers, [e[c]["linkgate_per_second"] for c in callers], marker="o", label="linkgate ExchangePublicToken")
    unlocked = [c for c in callers if "pgbench_unlocked_tps" in e[c]]
    if unlocked:
        ax.plot(unlocked, [e[c]["pgbench_unlocked_tps"] for c in unlocked], marker="s", linestyle="--",
                label="pgbench without the event lock")
        ax.plot(unlocked, [e[c]["linkgate_2_per_second"] for c in unlocked], marker="s", linestyle="--",
                label="linkgate on 2 replicas")
    ax.set_xlabel("concurrent callers")
    ax.set_ylabel("per second")
    ax.set_title("3. Exchange write path")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "exchange.png", dpi=110)
    plt.close(fig)

    f = results["fan_in"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ns = [row["n"] for row in f]
    ax.plot(ns, [row["direct_per_minute"] for row in f], marker="o", label="N integrators polling Deck every 5 s")
    ax.plot(ns, [max(row["linkgate_per_minute"], 0.1) for row in f], marker="o", label="N watchers on linkgate")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("upstream calls per minute")
    ax.set_title("5. Upstream fan-in")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(folder / "fan_in.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    stored = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "results.json")
    write(json.loads(stored.read_text()), stored.parent)
