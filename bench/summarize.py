#!/usr/bin/env python3
"""Prints rd_bench results (JSON lines) as tables, checks the targets of issue 6, and writes the
max_in_flight sweep as a gnuplot data file.

    bench/summarize.py RESULTS.jsonl [--plot-data FILE] [--markdown]

--markdown prints the tables as Markdown (as in docs/performance.md) instead.
"""
import json
import sys
from collections import defaultdict

TARGETS = {"postgresql": 0.85, "webhook": 0.50, "mqtt_republish": 0.30}
P99_TARGET_MS = 10.0
RSS_TARGET_MIB = 64.0


def fmt(v, d=0):
    return f"{v:,.{d}f}".replace(",", " ")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in open(argv[1]) if line.strip()]
    plot_data = argv[argv.index("--plot-data") + 1] if "--plot-data" in argv else None

    print(f"{'run':9} {'kind':15} {'N':>8} {'in-flight':>9} {'jobs/s':>9} {'ceiling':>9} "
          f"{'ratio':>6} {'errors':>6} {'DLQ':>5} {'redeliv':>7} {'RSS MiB':>7} {'CPU s':>6} "
          f"{'nats CPU s':>10}")
    for r in rows:
        if r.get("mode") != "throughput":
            continue
        c = r.get("ceiling", {})
        d = r.get("daemon", {})
        ratio = r.get("ratio")
        print(f"{r.get('label', ''):9} {r['kind']:15} {r['jobs']:>8} {r['max_in_flight']:>9} "
              f"{fmt(r['rate']):>9} {fmt(c.get('rate', 0)):>9} "
              f"{(f'{100 * ratio:.1f}%' if ratio else '-'):>6} {fmt(r.get('errors', 0)):>6} "
              f"{r.get('dead_lettered', 0):>5} {r.get('redelivered', 0):>7} "
              f"{d.get('peak_rss_mib', 0):>7.1f} {d.get('cpu_s', 0):>6.2f} "
              f"{r.get('nats_server_cpu_s', 0):>10.2f}"
              + ("" if r.get("complete", True) else "  DID NOT DRAIN")
              + "".join(f"  {k.split('.')[-1]}={v}" for k, v in r.get("set", {}).items()
                        if not k.endswith("max_queued_per_host")))

    lat = [r for r in rows if r.get("mode") == "latency"]
    if lat:
        print()
        print(f"{'latency':15} {'rate/s':>7} {'samples':>8} {'p50 ms':>7} {'p90 ms':>7} "
              f"{'p99 ms':>7} {'p99.9':>7} {'max ms':>7} {'RSS MiB':>7}")
        for r in lat:
            l = r["latency_ms"]
            print(f"{r['kind']:15} {fmt(r['rate']):>7} {l['samples']:>8} {l['p50']:>7.2f} "
                  f"{l['p90']:>7.2f} {l['p99']:>7.2f} {l['p999']:>7.2f} {l['max']:>7.2f} "
                  f"{r.get('daemon', {}).get('peak_rss_mib', 0):>7.1f}")

    # Targets (issue 6), from the "standard", "latency" and "rss" runs.
    print()
    print("targets:")
    for r in rows:
        if r.get("label") == "standard" and r["kind"] in TARGETS and r.get("ratio") is not None:
            want = TARGETS[r["kind"]]
            ok = r["ratio"] >= want and (r["kind"] != "webhook" or r.get("errors", 1) == 0)
            extra = f", errors {fmt(r.get('errors', 0))}" if r["kind"] == "webhook" else ""
            print(f"  {'met ' if ok else 'MISS'} {r['kind']}: {100 * r['ratio']:.1f}% of the "
                  f"ceiling (target >= {100 * want:.0f}%{extra})")
    for r in lat:
        if r["kind"] == "webhook":
            p99 = r["latency_ms"]["p99"]
            print(f"  {'met ' if p99 <= P99_TARGET_MS else 'MISS'} webhook p99 at "
                  f"{fmt(r['rate'])}/s: {p99:.2f} ms (target <= {P99_TARGET_MS:.0f} ms)")
    for r in rows:
        if r.get("label") == "rss" and r.get("max_in_flight") == 4096:
            rss = r.get("daemon", {}).get("peak_rss_mib", 0)
            print(f"  {'met ' if rss <= RSS_TARGET_MIB else 'MISS'} peak RSS at max_in_flight "
                  f"4096 ({r['kind']}): {rss:.1f} MiB (target <= {RSS_TARGET_MIB:.0f} MiB)")

    if "--markdown" in argv:
        print_markdown(rows)

    if plot_data:
        sweep = defaultdict(dict)
        kinds = ["postgresql", "webhook", "mqtt_republish"]
        for r in rows:
            if r.get("label") == "sweep":
                sweep[r["max_in_flight"]][r["kind"]] = r
        with open(plot_data, "w") as f:
            f.write("# max_in_flight " + " ".join(f"{k} {k}_ceiling" for k in kinds) + "\n")
            for m in sorted(sweep):
                cols = [str(m)]
                for k in kinds:
                    r = sweep[m].get(k)
                    cols += [f"{r['rate']:.0f}", f"{r.get('ceiling', {}).get('rate', 0):.0f}"] \
                        if r else ["NaN", "NaN"]
                f.write(" ".join(cols) + "\n")
    return 0


def print_markdown(rows):
    print()
    print("| run | path | N | max_in_flight | deliveries/s | ceiling/s | ratio | errors | "
          "dead-lettered | redelivered | peak RSS MiB | daemon CPU s | ctx sw/job | "
          "nats-server CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("mode") != "throughput":
            continue
        c = r.get("ceiling", {})
        d = r.get("daemon", {})
        sw = (d.get("voluntary_switches", 0) + d.get("involuntary_switches", 0)) / r["jobs"]
        sets = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in r.get("set", {}).items()
                         if not k.endswith("max_queued_per_host"))
        ratio = r.get("ratio")
        print(f"| {r.get('label', '')}{' (' + sets + ')' if sets else ''} | {r['kind']} | "
              f"{fmt(r['jobs'])} | {r['max_in_flight']} | **{fmt(r['rate'])}** | "
              f"{fmt(c.get('rate', 0))} | **{f'{100 * ratio:.1f} %' if ratio else '-'}** | "
              f"{fmt(r.get('errors', 0))} | {r.get('dead_lettered', 0)} | "
              f"{r.get('redelivered', 0)} | {d.get('peak_rss_mib', 0):.1f} | "
              f"{d.get('cpu_s', 0):.2f} | {sw:.2f} | {r.get('nats_server_cpu_s', 0):.2f} |")
    lat = [r for r in rows if r.get("mode") == "latency"]
    if lat:
        print()
        print("| latency | offered/s | samples | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | "
              "received/published |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in lat:
            l = r["latency_ms"]
            print(f"| {r['kind']} | {fmt(r['rate'])} | {fmt(l['samples'])} | {l['p50']:.2f} | "
                  f"{l['p90']:.2f} | **{l['p99']:.2f}** | {l['p999']:.2f} | {l['max']:.2f} | "
                  f"{r.get('received', 0)}/{r.get('published', 0)} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
