#!/usr/bin/env python3
"""scripts/bench --webhook-cost helper.

  wrk_cost.py run URL SCRIPT OUT.jsonl NGINX_PID   runs wrk -t1 -c8 -d10s, appends a JSON line
                                                   with its requests and CPU seconds (wait4)
  wrk_cost.py summary RESULTS.jsonl WRK.jsonl      the medians: daemon CPU per webhook job
                                                   against wrk's per request + the bare consumer's,
                                                   and the Node.js peer's rows (label node-peer)
"""
import json
import os
import re
import statistics
import subprocess
import sys


def proc_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url, script, out, nginx):
    n0 = proc_cpu(nginx)
    p = subprocess.Popen(["wrk", "-t1", "-c8", "-d10s", "-s", script, url],
                         stdout=subprocess.PIPE, text=True)
    text = p.stdout.read()
    _, _, ru = os.wait4(p.pid, 0)
    m = re.search(r"(\d+) requests in ([\d.]+)s", text)
    requests, seconds = (int(m.group(1)), float(m.group(2))) if m else (0, 0.0)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    row = {"label": "wrk", "requests": requests, "seconds": seconds,
           "cpu_s": ru.ru_utime + ru.ru_stime, "nginx_cpu_s": proc_cpu(nginx) - n0,
           "non_2xx": int(bad.group(1)) if bad else 0}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  wrk               {requests / max(seconds, 1e-9):,.0f} requests/s, "
          f"CPU {1e6 * row['cpu_s'] / max(requests, 1):.2f} us/request, nginx "
          f"{1e6 * row['nginx_cpu_s'] / max(requests, 1):.2f} us/request, non-2xx {row['non_2xx']}")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(results, wrk_file):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    wrk = [json.loads(l) for l in open(wrk_file) if l.strip()]
    noop = [r for r in rows if r.get("kind") == "postgresql" and "daemon" in r]
    hook = [r for r in rows if r.get("kind") == "webhook" and "daemon" in r]
    d = [1e6 * r["daemon"]["cpu_s"] / r["jobs"] for r in hook]
    bare = [1e6 * r["ceiling"]["consumer_cpu_s"] / r["jobs"] for r in hook
            if "consumer_cpu_s" in r.get("ceiling", {})]
    w = [1e6 * x["cpu_s"] / max(x["requests"], 1) for x in wrk]
    wrate = [x["requests"] / max(x["seconds"], 1e-9) for x in wrk]
    ns_hook = [1e6 * r["nats_server_cpu_s"] / r["jobs"] for r in hook if "nats_server_cpu_s" in r]
    ns_noop = [1e6 * r["nats_server_cpu_s"] / r["jobs"] for r in noop if "nats_server_cpu_s" in r]
    rate = [r["rate"] for r in hook]
    r2 = lambda xs: [round(x, 2) for x in xs]
    print(f"webhook cost: medians of {len(hook)} rounds, per-round values in brackets")
    print(f"  route-delivery, signed webhook {med(rate):>9,.0f} jobs/s   daemon CPU "
          f"{med(d):6.2f} us/job      {r2(d)}")
    print(f"  bare nats.c consumer (fetch+ack)               CPU {med(bare):6.2f} us/job      "
          f"{r2(bare)}")
    print(f"  wrk -t1 -c8, the same request  {med(wrate):>9,.0f} req/s    CPU {med(w):6.2f} "
          f"us/request  {r2(w)}")
    if d and bare and w:
        print(f"  daemon / (wrk + bare consumer): {med(d) / (med(w) + med(bare)):.2f}")
    if ns_hook and ns_noop:
        print(f"  nats-server CPU per job: webhook {med(ns_hook):.2f} us, no-op {med(ns_noop):.2f} us "
              f"(ratio {med(ns_hook) / med(ns_noop):.2f})")
    # The Node.js peer (rd_bench --consumer-cmd): its CPU is under "consumer", not "daemon".
    peer = [r for r in rows if r.get("label") == "node-peer" and "consumer" in r]
    if peer:
        prate = [r["rate"] for r in peer]
        pcpu = [1e6 * r["consumer"]["cpu_s"] / r["jobs"] for r in peer]
        pns = [1e6 * r["nats_server_cpu_s"] / r["jobs"] for r in peer if "nats_server_cpu_s" in r]
        perr = sum(r.get("errors", 0) for r in peer)
        print(f"  Node.js peer (nats.js+undici)  {med(prate):>9,.0f} jobs/s   CPU "
              f"{med(pcpu):6.2f} us/job      {r2(pcpu)}  jobs/s {r2(prate)}")
        if pns:
            print(f"  nats-server CPU per job with the Node.js peer: {med(pns):.2f} us")
        if rate and d:
            print(f"  route-delivery / Node.js peer: {med(rate) / med(prate):.2f}x the jobs/s, "
                  f"{med(pcpu) / med(d):.2f}x less CPU per job (issue 14 goal: >= 5x the jobs/s)")
        if perr:
            print(f"  ** Node.js peer errors: {perr:.0f} **")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "run":
        run(*sys.argv[2:6])
    elif len(sys.argv) == 4 and sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
