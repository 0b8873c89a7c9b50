#!/usr/bin/env node
// A Node.js comparison peer for route-delivery's webhook benchmark (issue 14; bench/README.md).
//
// A JetStream pull consumer on the same stream and durable consumer the daemon uses (created with
// the daemon's settings when missing), fetching batches of --fetch-batch, keeping at most
// --max-in-flight jobs in flight (delivery.max_in_flight's default, 1024). Each job's payload is
// POSTed, byte for byte as published, to the route's destination_config.url through an undici
// keep-alive Pool per origin (--connections, 8 like plugins.webhook.max_connections_per_host),
// signed as the webhook plugin signs for a secret not starting "whsec_":
//   X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
// with webhook-id (msg_ + 32 hex of SHA-256(tenant \0 route id \0 "STREAM:<stream seq>")) and
// webhook-timestamp. Acked after a 2xx, nak'ed otherwise. On SIGTERM/SIGINT it prints its counts
// as one JSON line on stdout and exits.
//
//   node peer.js --nats-url nats://127.0.0.1:4222 [--stream ROUTES] [--consumer route-delivery]
//                [--fetch-batch 256] [--max-in-flight 1024] [--connections 8] [--ca-file PEM]
//
// Needs `npm ci` in this folder first (bench/README.md); nothing in CI installs or runs it.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const { connect, AckPolicy, DeliverPolicy, nanos } = require("nats");
const { Pool } = require("undici");

function options(argv) {
  const o = {
    natsUrl: "nats://127.0.0.1:4222",
    stream: "ROUTES",
    consumer: "route-delivery",
    fetchBatch: 256,
    maxInFlight: 1024,
    connections: 8,
    caFile: "",
  };
  const names = {
    "--nats-url": "natsUrl",
    "--stream": "stream",
    "--consumer": "consumer",
    "--fetch-batch": "fetchBatch",
    "--max-in-flight": "maxInFlight",
    "--connections": "connections",
    "--ca-file": "caFile",
  };
  for (let i = 2; i < argv.length; i += 2) {
    const k = names[argv[i]];
    if (!k || i + 1 >= argv.length) {
      console.error(`peer.js: unknown option or missing value: ${argv[i]}`);
      process.exit(2);
    }
    o[k] = typeof o[k] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

// The raw text of the top-level "payload" value of a job: the body the daemon sends is the
// payload exactly as published (no re-serialisation, which would also round sent_ns, a 64-bit
// integer, to a double).
function rawPayload(text) {
  let depth = 0;
  let key = null;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 /* \ */ ? 2 : 1;
      if (depth === 1 && expectKey) key = text.slice(i + 1, j);
      i = j;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (depth === 1 && key === "payload") {
        let d = 0;
        for (let j = i; j < text.length; j++) {
          const e = text.charCodeAt(j);
          if (e === 34) {
            j++;
            while (text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
          } else if (e === 123 || e === 91) {
            d++;
          } else if ((e === 125 || e === 93) && --d === 0) {
            return text.slice(i, j + 1);
          }
        }
        return null;
      }
      depth++;
      expectKey = c === 123;
    } else if (c === 125 || c === 93) {
      depth--;
    } else if (c === 58 /* : */) {
      expectKey = false;
    } else if (c === 44 /* , */) {
      expectKey = depth === 1;
    }
  }
  return null;
}

async function main() {
  const o = options(process.argv);
  const counts = { ok: 0, failed: 0, errors: 0, invalid: 0 };
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    process.stdout.write(JSON.stringify({ peer: "node", ...counts }) + "\n", () =>
      process.exit(0),
    );
  };
  process.on("SIGTERM", finish);
  process.on("SIGINT", finish);

  const nc = await connect({ servers: o.natsUrl, name: "rd-node-peer" });
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.consumers.info(o.stream, o.consumer);
  } catch {
    // The daemon's consumer settings (core/src/nats_client.cpp).
    await jsm.consumers.add(o.stream, {
      durable_name: o.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30000),
      max_deliver: 3,
      max_ack_pending: Math.max(65536, o.maxInFlight * 16),
      max_waiting: 512,
    });
  }
  const consumer = await nc.jetstream().consumers.get(o.stream, o.consumer);

  const ca = o.caFile ? fs.readFileSync(o.caFile) : undefined;
  const pools = new Map(); // origin -> Pool
  const pool = (origin) => {
    let p = pools.get(origin);
    if (!p) {
      p = new Pool(origin, {
        connections: o.connections,
        pipelining: 1,
        keepAliveTimeout: 60000,
        connect: ca ? { ca } : undefined,
      });
      pools.set(origin, p);
    }
    return p;
  };
  const keys = new Map(); // secret -> Buffer (createHmac takes it as is)

  let inFlight = 0;
  let wake = null;
  const done = () => {
    inFlight--;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };

  const deliver = async (m) => {
    try {
      const text = m.string();
      const job = JSON.parse(text);
      const cfg = job.route && job.route.destination_config;
      const payload = rawPayload(text);
      if (!cfg || typeof cfg.url !== "string" || payload === null) {
        counts.invalid++;
        m.term();
        return;
      }
      const url = new URL(cfg.url);
      const body = Buffer.from(payload);
      const id = crypto
        .createHash("sha256")
        .update(`${job.tenant_id}\0${job.route.id}\0${o.stream}:${m.seq}`)
        .digest("hex")
        .slice(0, 32);
      const headers = {
        "content-type": "application/json",
        "user-agent": "rd-node-peer/1.0",
        "webhook-id": `msg_${id}`,
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
      };
      const secret = cfg.secret;
      if (typeof secret === "string" && secret !== "" && !secret.startsWith("whsec_")) {
        let k = keys.get(secret);
        if (!k) keys.set(secret, (k = Buffer.from(secret)));
        headers["x-signature-256"] =
          "sha256=" + crypto.createHmac("sha256", k).update(body).digest("hex");
      }
      const res = await pool(url.origin).request({
        method: "POST",
        path: url.pathname + url.search,
        headers,
        body,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        counts.ok++;
        m.ack();
      } else {
        counts.failed++;
        m.nak();
      }
    } catch (e) {
      counts.errors++;
      if (counts.errors <= 5) console.error(`peer.js: ${e && e.message}`);
      m.nak();
    } finally {
      done();
    }
  };

  while (!finished) {
    while (inFlight + o.fetchBatch > o.maxInFlight) await new Promise((r) => (wake = r));
    const batch = await consumer.fetch({ max_messages: o.fetchBatch, expires: 1000 });
    for await (const m of batch) {
      inFlight++;
      deliver(m);
    }
  }
}

main().catch((e) => {
  console.error(`peer.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
