#!/usr/bin/env python3
"""Prints rd_bench results (JSON lines) as tables, checks the targets of issue 6, and writes the
max_in_flight sweep as a gnuplot data file.

    bench/summarize.py RESULTS.jsonl [--plot-data FILE] [--markdown] [--compare]

--markdown also prints the tables as Markdown (as in docs/performance.md).
--compare prints the runs labelled "reference" and "candidate" (scripts/bench --reference) side
by side per kind: medians of jobs/s and of the daemon's CPU µs per job, and each pair's ratio
(candidate / reference; the k-th reference run of a kind pairs with its k-th candidate run).
Scenario rows (rd_bench --scenario) are printed in their own table.
"""
import json
import statistics
import sys
from collections import defaultdict

COMPARE_KINDS = ["postgresql", "webhook", "mqtt_republish"]

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

    print_scenarios(rows)

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

    if "--compare" in argv:
        print_compare(rows, "--markdown" in argv)

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


def cpu_us_per_job(r):
    return 1e6 * r.get("daemon", {}).get("cpu_s", 0) / r["jobs"]


def pairs_of(rows, kind):
    ref = [r for r in rows if r.get("label") == "reference" and r["kind"] == kind
           and r.get("mode") == "throughput"]
    new = [r for r in rows if r.get("label") == "candidate" and r["kind"] == kind
           and r.get("mode") == "throughput"]
    return list(zip(ref, new))


def print_compare(rows, markdown):
    """Reference against candidate, per kind: medians and per-pair ratios."""
    table = []
    for kind in COMPARE_KINDS:
        pairs = pairs_of(rows, kind)
        if not pairs:
            continue
        rr = [p[0]["rate"] for p in pairs]
        nr = [p[1]["rate"] for p in pairs]
        rc = [cpu_us_per_job(p[0]) for p in pairs]
        nc = [cpu_us_per_job(p[1]) for p in pairs]
        ratios_rate = [n / r for r, n in zip(rr, nr)]
        ratios_cpu = [n / r for r, n in zip(rc, nc)]
        # Ratio to each run's own ceiling, which follows the machine's state of the moment.
        rq = [p[0].get("ratio") or 0 for p in pairs]
        nq = [p[1].get("ratio") or 0 for p in pairs]
        other = [max(p[0].get("machine", {}).get("other_cpu_s", 0),
                     p[1].get("machine", {}).get("other_cpu_s", 0)) for p in pairs]
        bad = [p for p in pairs if not (p[0].get("complete") and p[1].get("complete"))
               or p[0].get("errors", 0) or p[1].get("errors", 0)]
        table.append(dict(kind=kind, n=len(pairs), rr=rr, nr=nr, rc=rc, nc=nc,
                          ratios_rate=ratios_rate, ratios_cpu=ratios_cpu, rq=rq, nq=nq,
                          other=other, bad=len(bad)))
    if not table:
        print("\ncompare: no runs labelled reference and candidate")
        return
    med = statistics.median
    print()
    print("compare (candidate / reference; medians over the pairs, then each pair's ratio):")
    print(f"{'kind':15} {'pairs':>5} {'ref jobs/s':>10} {'new jobs/s':>10} {'ratio':>6}  "
          f"{'ref µs/job':>10} {'new µs/job':>10} {'ratio':>6}  {'ref/ceil':>8} {'new/ceil':>8}"
          f"  per-pair jobs/s ratios | per-pair µs/job ratios | other CPU s per pair")
    for t in table:
        print(f"{t['kind']:15} {t['n']:>5} {fmt(med(t['rr'])):>10} {fmt(med(t['nr'])):>10} "
              f"{med(t['nr']) / med(t['rr']):>6.3f}  {med(t['rc']):>10.2f} {med(t['nc']):>10.2f} "
              f"{med(t['nc']) / med(t['rc']):>6.3f}  {100 * med(t['rq']):>7.1f}% "
              f"{100 * med(t['nq']):>7.1f}%  "
              + " ".join(f"{x:.2f}" for x in t["ratios_rate"]) + " | "
              + " ".join(f"{x:.2f}" for x in t["ratios_cpu"]) + " | "
              + " ".join(f"{x:.1f}" for x in t["other"])
              + (f"  ({t['bad']} pair(s) with errors or not drained)" if t["bad"] else ""))
    print("  within 5 %: jobs/s ratio of the medians >= 0.95 and µs/job ratio <= 1.05")
    for t in table:
        r = med(t["nr"]) / med(t["rr"])
        c = med(t["nc"]) / med(t["rc"])
        print(f"  {'met ' if r >= 0.95 else 'MISS'} {t['kind']} jobs/s {100 * (r - 1):+.1f} %; "
              f"{'met ' if c <= 1.05 else 'MISS'} µs/job {100 * (c - 1):+.1f} %")
    if markdown:
        print()
        print("| path | pairs | jobs/s reference | jobs/s candidate | ratio | per-pair ratios | "
              "daemon µs/job reference | daemon µs/job candidate | ratio | per-pair ratios | "
              "share of the ceiling ref / new |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for t in table:
            print(f"| {t['kind']} | {t['n']} | {fmt(med(t['rr']))} | {fmt(med(t['nr']))} | "
                  f"**{med(t['nr']) / med(t['rr']):.3f}** | "
                  + ", ".join(f"{x:.2f}" for x in t["ratios_rate"]) + " | "
                  f"{med(t['rc']):.2f} | {med(t['nc']):.2f} | "
                  f"**{med(t['nc']) / med(t['rc']):.3f}** | "
                  + ", ".join(f"{x:.2f}" for x in t["ratios_cpu"]) + " | "
                  f"{100 * med(t['rq']):.1f} % / {100 * med(t['nq']):.1f} % |")


def build_of(r):
    """The build dir of the daemon a row measured ("…/build" of "…/build/bin/route-delivery")."""
    d = r.get("daemon_bin", "")
    return d[: -len("/bin/route-delivery")] if d.endswith("/bin/route-delivery") else d


def print_scenarios(rows, markdown=False):
    fair = [r for r in rows if r.get("mode") == "scenario" and r.get("scenario") == "fairness"]
    out = [r for r in rows if r.get("mode") == "scenario" and r.get("scenario") == "outage"]
    if fair:
        print()
        if markdown:
            print("| fairness (daemon build) | A jobs × answer ms | B jobs at /s | B p50 ms | B p99 ms | B max ms "
                  "| A drained in s (best) | dead-lettered | duplicates | saturated deferrals |")
            print("|---|---|---|---|---|---|---|---|---|---|")
        else:
            print(f"{'fairness':10} {'A jobs':>6} {'A ms':>5} {'B jobs':>6} {'B p50 ms':>9} "
                  f"{'B p99 ms':>9} {'B max ms':>9} {'A drain s':>9} {'best s':>6} {'DLQ':>4} "
                  f"{'dup':>4} {'deferred':>8}")
        for r in fair:
            b = r["fast_latency_ms"]
            sat = r.get("deferrals", {}).get("saturated", -1)
            sat_text = fmt(sat) if sat >= 0 else "-"
            daemon = build_of(r)
            if markdown:
                print(f"| {daemon} | {r['slow']['jobs']} × {r['slow']['answer_ms']} | "
                      f"{r['fast']['jobs']} at {fmt(r['fast']['rate'])} | {b['p50']:.1f} | "
                      f"**{b['p99']:.1f}** | {b['max']:.1f} | {r['slow_drain_s']:.1f} "
                      f"({r['slow_drain_best_s']:.1f}) | {r['dead_lettered']} | "
                      f"{r['duplicates']} | {sat_text} |")
            else:
                print(f"{r.get('label', ''):10} {r['slow']['jobs']:>6} {r['slow']['answer_ms']:>5} "
                      f"{r['fast']['jobs']:>6} {b['p50']:>9.1f} {b['p99']:>9.1f} {b['max']:>9.1f} "
                      f"{r['slow_drain_s']:>9.1f} {r['slow_drain_best_s']:>6.1f} "
                      f"{r['dead_lettered']:>4} {r['duplicates']:>4} {sat_text:>8}  {daemon}"
                      + ("" if r.get("complete") else "  NOT COMPLETE"))
    if out:
        print()
        if markdown:
            print("| outage (daemon build) | down s, A jobs | B /s | B p50 / p99 ms before | B p50 / p99 ms "
                  "during | B max ms during | connection attempts while down (plugin / kernel) | "
                  "held back by the circuit | all A delivered after s (else delivered/published) | "
                  "dead-lettered | "
                  "duplicates |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
        else:
            print(f"{'outage':10} {'down s':>6} {'A jobs':>6} {'B /s':>5} {'B p50':>6} "
                  f"{'B p99':>6} {'out p50':>7} {'out p99':>7} {'out max':>7} {'attempts':>8} "
                  f"{'kernel':>6} {'held':>6} {'recov s':>7} {'DLQ':>4} {'dup':>4}")
        for r in out:
            base = r["other_latency_ms"]["baseline"]
            dur = r["other_latency_ms"]["outage"]
            w = r["while_down"]
            daemon = build_of(r)

            def n(v):
                return fmt(v) if v is not None and v >= 0 else "-"
            # Connection attempts as the plugin reported them: DEFER (refused, from issue 11 on)
            # or RETRY (before).
            parts = [w.get(k, -1) for k in ("plugin_deferred", "plugin_retry")]
            attempts = sum(v for v in parts if v >= 0) if any(v >= 0 for v in parts) else -1
            recov = f"{r['recovery_s']:.2f}" if r.get("recovered") else \
                f"{r['outage_received']}/{r['outage_published']}"
            if markdown:
                print(f"| {daemon} | {r['outage']['seconds']:.0f}, {r['outage']['jobs']} | "
                      f"{fmt(r['other']['rate'])} | {base['p50']:.1f} / {base['p99']:.1f} | "
                      f"{dur['p50']:.1f} / **{dur['p99']:.1f}** | {dur['max']:.1f} | "
                      f"{n(attempts)} / {n(w['tcp_attempt_fails'])} | "
                      f"{n(w['circuit_open_deferrals'])} | {recov} | {r['dead_lettered']} | "
                      f"{r['duplicates']} |")
            else:
                print(f"{r.get('label', ''):10} {r['outage']['seconds']:>6.0f} {r['outage']['jobs']:>6} "
                      f"{r['other']['rate']:>5.0f} {base['p50']:>6.1f} {base['p99']:>6.1f} "
                      f"{dur['p50']:>7.1f} {dur['p99']:>7.1f} {dur['max']:>7.1f} "
                      f"{n(attempts):>8} {n(w['tcp_attempt_fails']):>6} "
                      f"{n(w['circuit_open_deferrals']):>6} {recov:>7} {r['dead_lettered']:>4} "
                      f"{r['duplicates']:>4}  {daemon}"
                      + ("" if r.get("complete") else "  NOT COMPLETE"))


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
    print_scenarios(rows, markdown=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
