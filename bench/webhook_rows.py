#!/usr/bin/env python3
"""scripts/bench --https and --many-destinations helper (issue 14).

  webhook_rows.py handshakes CONN.log ACCEPTS0 ACCEPTS1 JOBS OUT.jsonl
      one --https run's TLS connections: nginx's accepts (stub_status) before and after, and the
      connections nginx logged (first request of each: protocol, $ssl_session_reused); appends a
      JSON line and prints it
  webhook_rows.py https RESULTS.jsonl HANDSHAKES.jsonl [IDLE_RESTART_CONNECTIONS.log]
      medians over the rounds: plain HTTP vs HTTPS jobs/s and CPU per job, handshakes per 100 000;
      with the idle-and-restart run's connection log ("# batch N" lines between the batches), the
      TLS connections each batch opened
  webhook_rows.py many RESULTS.jsonl DELAY_MS
      each many-destinations run against the bound the latency allows, with the sink's counts
      (connections accepted, signatures that did not verify) that scripts/bench adds to its line
"""
import json
import statistics
import sys


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def per_job_us(r, key):
    v = r.get(key) if key != "daemon" else r.get("daemon", {}).get("cpu_s")
    return 1e6 * v / r["jobs"] if v is not None else float("nan")


def handshakes(log, a0, a1, jobs, out):
    lines = [l.split() for l in open(log) if l.strip()]
    # The second status request is itself one accepted connection.
    accepted = int(a1) - int(a0) - 1 if a0 and a1 else -1
    row = {"jobs": int(jobs), "accepted": accepted, "connections_logged": len(lines),
           "resumed": sum(1 for l in lines if l[-1] == "r"),
           "protocols": sorted({f"{l[1]} {l[2]}" for l in lines if len(l) >= 3})}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  TLS connections   {accepted} accepted by nginx, {row['connections_logged']} carried "
          f"requests, {row['resumed']} resumed a TLS session; {', '.join(row['protocols'])}")


def https(results, hs_file, idle_log=None):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    hs = [json.loads(l) for l in open(hs_file) if l.strip()]
    r2 = lambda xs: [round(x, 1) for x in xs]
    print(f"HTTPS (TLS + HTTP/2, ca_file) against plain HTTP: medians of the rounds, per round "
          f"in brackets")
    print(f"  {'':<22}{'jobs/s':>10}{'daemon us/job':>15}{'nats-server us/job':>20}"
          f"{'sink us/job':>13}")
    for label in ("http", "https"):
        rs = [r for r in rows if r.get("label") == label and "daemon" in r]
        rate = [r["rate"] for r in rs]
        d = [per_job_us(r, "daemon") for r in rs]
        ns = [per_job_us(r, "nats_server_cpu_s") for r in rs]
        sink = [1e6 * sum(r.get("sink_cpu_s", {}).values()) / r["jobs"] for r in rs]
        name = "plain HTTP/1.1" if label == "http" else "HTTPS (TLS, HTTP/2)"
        print(f"  {name:<22}{med(rate):>10,.0f}{med(d):>15.1f}{med(ns):>20.1f}{med(sink):>13.1f}"
              f"   {r2(rate)} {r2(d)}")
        errors = sum(r.get("errors", 0) for r in rs)
        if errors:
            print(f"  ** {label}: {errors:.0f} errors **")
    for h in hs:
        n = max(h["jobs"], 1)
        print(f"  handshakes: {h['accepted']} TLS connections for {h['jobs']} jobs = "
              f"{1e5 * h['accepted'] / n:.1f} per 100 000 jobs ({h['resumed']} of "
              f"{h['connections_logged']} logged resumed a session; {', '.join(h['protocols'])})")
    if idle_log:
        idle_restart(rows, idle_log)


def idle_restart(rows, log):
    batches, current = {}, None
    for line in open(log):
        w = line.split()
        if not w:
            continue
        if w[0] == "#" and len(w) == 3:
            current = int(w[2])
            batches.setdefault(current, [])
        elif current is not None:
            batches[current].append(w)
    run = next((r for r in rows if r.get("label") == "https-idle-restart"), None)
    what = {1: "first batch (new daemon)", 2: "after 8 s idle (nginx closed idle connections "
            "after 4 s)", 3: "after an nginx restart, same ticket key",
            4: "after an nginx restart, new ticket key"}
    print(f"  idle and restart (one daemon, {len(batches)} batches):")
    for b, conns in sorted(batches.items()):
        info = (run or {}).get("batches", [])
        rate = f"{info[b - 1]['rate']:,.0f} jobs/s, " if len(info) >= b else ""
        print(f"    batch {b}, {what.get(b, '')}: {rate}{len(conns)} TLS connection(s), "
              f"{sum(1 for c in conns if c[-1] == 'r')} resumed a session; "
              f"{', '.join(sorted({f'{c[1]} {c[2]}' for c in conns if len(c) >= 3}))}")
    if run:
        d = run.get("daemon", {})
        total = run.get("jobs_total", run["jobs"])
        print(f"    {total} jobs, errors {run.get('errors', 0):.0f}, redelivered "
              f"{run.get('redelivered', -1)}, daemon CPU {1e6 * d.get('cpu_s', 0) / total:.1f} "
              f"us/job")


def many(results, delay_ms):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    latency = float(delay_ms) / 1000
    print(f"many destinations, each answering after {delay_ms} ms")
    # wrk's rows by max_in_flight (one per round; with several, "of wrk" uses their median).
    wrk_runs = {}
    for r in rows:
        if r.get("label") == "many-destinations-wrk":
            wrk_runs.setdefault(int(r["max_in_flight"]), []).append(r)
    wrk = {m: {"rate": statistics.median(x["rate"] for x in rs)} for m, rs in wrk_runs.items()}
    for m, rs in sorted(wrk_runs.items(), reverse=True):
        bound = m / latency
        for r in rs:
            print(f"  wrk -t2 -c{m} to one endpoint of the same sink (no NATS, no daemon): "
                  f"{r['rate']:,.0f} requests/s, {100 * r['rate'] / bound:.1f}% of {bound:,.0f}, "
                  f"mean latency {r.get('latency_ms', float('nan')):.2f} ms")
    print(f"  {'dest':>5}{'max_in_flight':>14}{'share':>7}{'conn':>6}{'bound jobs/s':>14}"
          f"{'jobs/s':>10}{'of bound':>10}{'daemon us/job':>15}{'sink us/job':>13}"
          f"{'of wrk':>8}{'CPU-bound jobs/s':>18}{'connections':>13}  set")
    for r in rows:
        if r.get("label") not in ("many-destinations", "many-destinations-reference") \
                or "daemon" not in r:
            continue
        build = "reference" if r["label"].endswith("-reference") else ""
        sets = r.get("set", {})
        m = int(r["max_in_flight"])
        share = int(sets.get("delivery.max_in_flight_per_destination", 0)) or max(1, m // 4)
        conn = int(sets.get("plugins.webhook.max_connections_per_host", 8))
        dest = int(r.get("webhook_destinations", 1))
        bound = min(m, dest * min(conn, share)) / latency
        d = per_job_us(r, "daemon")
        ns = per_job_us(r, "nats_server_cpu_s")
        sink = 1e6 * sum(r.get("sink_cpu_s", {}).values()) / r["jobs"]
        # What two cores allow when every job costs the daemon, nats-server and the sink this much.
        cpu_bound = 2e6 / (d + ns + sink) if d + ns + sink > 0 else float("nan")
        of_wrk = f"{100 * r['rate'] / wrk[m]['rate']:.1f}%" if m in wrk else "-"
        print(f"  {dest:>5}{m:>14}{share:>7}{conn:>6}{bound:>14,.0f}{r['rate']:>10,.0f}"
              f"{100 * r['rate'] / bound:>9.1f}%{d:>15.1f}{sink:>13.1f}"
              f"{of_wrk:>8}{cpu_bound:>18,.0f}"
              f"{r.get('delay_sink', {}).get('connections', -1):>13}  "
              f"{' '.join(f'{k}={v}' for k, v in sets.items()) or '-'}"
              f"{'  (reference)' if build else ''}"
              f"{'' if r.get('complete') else '  ** DID NOT DRAIN **'}")
        bad = r.get("delay_sink", {}).get("bad_signatures", 0)
        if bad:
            print(f"  ** {bad} requests with a signature that did not verify **")
        if r.get("errors"):
            print(f"  ** {r['errors']:.0f} errors **")
    # With several rounds: the median of each configuration and build.
    groups = {}
    for r in rows:
        if r.get("label") not in ("many-destinations", "many-destinations-reference") \
                or "daemon" not in r or not r.get("complete"):
            continue
        sets = r.get("set", {})
        key = (int(r["max_in_flight"]), " ".join(f"{k}={v}" for k, v in sets.items()) or "-",
               "reference" if r["label"].endswith("-reference") else "this build")
        groups.setdefault(key, []).append(r)
    if any(len(g) > 1 for g in groups.values()):
        print("  medians over the rounds:")
        for (m, sets, build), g in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1],
                                                                          kv[0][2])):
            r0 = g[0]
            share = int(r0.get("set", {}).get("delivery.max_in_flight_per_destination", 0)) \
                or max(1, m // 4)
            conn = int(r0.get("set", {}).get("plugins.webhook.max_connections_per_host", 8))
            dest = int(r0.get("webhook_destinations", 1))
            bound = min(m, dest * min(conn, share)) / latency
            rates = sorted(x["rate"] for x in g)
            rate = statistics.median(rates)
            d = statistics.median(per_job_us(x, "daemon") for x in g)
            of_wrk = f", {100 * rate / wrk[m]['rate']:.1f}% of wrk" if m in wrk else ""
            print(f"    max_in_flight {m:>5}  {sets:<28} {build:<10}  {len(g)} runs  "
                  f"{rate:>8,.0f} jobs/s = {100 * rate / bound:.1f}% of {bound:,.0f}{of_wrk}  "
                  f"(runs {100 * rates[0] / bound:.1f}-{100 * rates[-1] / bound:.1f}%)  "
                  f"daemon {d:.1f} us/job")
    print("  bound = min(max_in_flight, destinations x min(max_connections_per_host, share)) / "
          "latency; CPU-bound = 2 cores / (daemon + nats-server + sink CPU per job); "
          "connections = TCP connections the sink accepted in the run; of wrk = jobs/s against wrk's "
          "requests/s at max_in_flight connections")


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 6 and a[0] == "handshakes":
        handshakes(*a[1:])
    elif len(a) in (3, 4) and a[0] == "https":
        https(*a[1:])
    elif len(a) == 3 and a[0] == "many":
        many(*a[1:])
    else:
        sys.exit(__doc__)
