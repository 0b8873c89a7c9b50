/*
 * route-delivery plugin SDK — the C ABI between the delivery host and a destination plugin.
 *
 * This is the only header a plugin includes. It is pure C (C99), uses fixed-width types only, and
 * contains no C++ types, no `bool` and no enums inside structs, so a plugin built with any compiler
 * against any later minor version keeps loading.
 *
 * Versioning
 *   RD_ABI_VERSION_MAJOR must match the host's exactly; the host refuses a plugin whose major
 *   differs and logs both numbers. RD_ABI_VERSION_MINOR only ever grows: new fields are appended to
 *   the end of structs and new functions to the end of function tables. Every struct starts with
 *   `struct_size` (sizeof as the writer compiled it), so either side can tell which fields the
 *   other knows: read a field only if `struct_size` covers it (use RD_HAS_FIELD).
 *
 * Life cycle (see docs/plugin-authoring.md for a walk-through)
 *   1. The host dlopen()s every `*.so` in the plugin folder with RTLD_NOW | RTLD_LOCAL and calls
 *      the exported entry function `rd_plugin_entry` (RD_PLUGIN_ENTRY_SYMBOL). It returns a pointer
 *      to a static descriptor that stays valid for the life of the process.
 *   2. The host validates its own configuration section for the plugin (`plugins.<name>`) against
 *      `config_keys` (types, and from 1.2 required keys, ranges and allowed values), applies
 *      defaults and environment overrides, calls `xValidate` if the plugin has one (1.2), and
 *      calls `xCreate`. `route-delivery --check-config` runs the same steps but xCreate.
 *   3. The host calls `xDeliver` once per job attempt. The plugin reports the outcome by calling
 *      `services->complete` exactly once per `delivery_id`, from any thread, at any later time
 *      (or from inside `xDeliver` itself). A plugin that queues jobs before sending them sets
 *      RD_PLUGIN_REPORTS_STARTED and calls `services->started` when a job leaves its queue (1.1).
 *   4. At shutdown the host stops calling `xDeliver`, waits for outstanding completions (bounded by
 *      the shutdown grace period) and calls `xDestroy`. The shared object is never unloaded.
 *   5. A reload (SIGHUP) that changes `plugins.<name>` creates a second instance with the new
 *      config (xCreate, with the same services table) while the first keeps running; when xCreate
 *      fails, the first stays in service. Otherwise new jobs go to the new instance, the old one
 *      receives no more xDeliver/xDestination calls but still completes the jobs it holds, and
 *      once none is left (completed or timed out) the host calls its xDestroy. So two instances
 *      of one plugin may live at once: keep state per instance, not in globals. Registering the
 *      same metric again from the second instance returns the same handle.
 *
 * Threading rules
 *   - `xCreate` and `xDestroy` run on a host thread (start-up, the reload's signal thread, the
 *     thread that destroys a replaced instance, shutdown), never concurrently with anything else
 *     of the same instance. Another instance of the same plugin may be running meanwhile.
 *   - `xDeliver` calls for one instance are serialised (never two at once) but may come from
 *     different host threads over time. `xDeliver` must not block: queue the work and return.
 *   - `xHealth` may be called from the host's HTTP thread concurrently with `xDeliver` and with
 *     the plugin's own threads; it must be thread-safe and cheap.
 *   - Every function in `rd_host_services` is thread-safe and may be called from any thread,
 *     including from inside `xDeliver`, until `xDestroy` returns.
 *
 * Ownership (docs/plugin-authoring.md, "Ownership", says the same)
 *   - Everything the host passes is borrowed. The `rd_job` and its strings stay valid until the
 *     plugin calls `complete` for that job, even after the host gave up waiting for it (timed out:
 *     the job is retried from a fresh copy and the late `complete` is ignored) and, for a job never
 *     completed, until `xDestroy` returns. The services table stays valid until `xDestroy`
 *     returns. `config_json` is valid only during the `xCreate` (or `xValidate`) call.
 *   - Everything the plugin passes to the host (result reason, log message, metric names, labels
 *     and help) is copied by the host before the call returns: a stack buffer is fine. The
 *     `error` and `detail` buffers of xCreate, xValidate and xHealth belong to the host; the
 *     plugin only writes into them.
 *   - Nothing is ever freed across the boundary.
 *
 * Exceptions
 *   No C++ exception may leave any function of this ABI. C++ plugins wrap each entry point; the
 *   helper header <route_delivery/plugin.hpp> provides guards that turn an escaping exception into
 *   a permanent failure (xDeliver) or a create error (xCreate).
 */
#ifndef ROUTE_DELIVERY_PLUGIN_H
#define ROUTE_DELIVERY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RD_ABI_VERSION_MAJOR 1
#define RD_ABI_VERSION_MINOR 2

/* Name of the one symbol a plugin exports. Its type is rd_plugin_entry_fn. */
#define RD_PLUGIN_ENTRY_SYMBOL "rd_plugin_entry"

/* Marks the entry function exported even when the plugin builds with -fvisibility=hidden. */
#if defined(_WIN32)
#define RD_PLUGIN_EXPORT __declspec(dllexport)
#else
#define RD_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* True when a struct written with `struct_size` contains field `field` of type `type`. */
#define RD_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* ---- Outcomes ------------------------------------------------------------------------------ */

/* Delivered; the host acks the job. */
#define RD_OUTCOME_OK 0
/* Transient failure; the host retries after its back-off (or `retry_after_ms` if longer) while
 * attempts remain, then dead-letters the job with the reason. */
#define RD_OUTCOME_RETRY 1
/* The job can never succeed as written (bad config, rejected by the destination); the host
 * dead-letters it at once with the reason. */
#define RD_OUTCOME_PERMANENT 2
/* (1.1) The destination could not be tried: it is unreachable (connection refused, name not
 * resolved, broker or database down) or saturated (the plugin's own queue for it is full). No
 * attempt is spent: the host re-queues the job after `retry_after_ms` (or its own deferral delay,
 * which grows) and dead-letters it only when it has waited longer than `delivery.give_up_after`
 * since it was published. A request that was sent and then failed or timed out is RETRY, not
 * DEFER. Return DEFER only when `services->abi_minor >= 1` (a 1.0 host treats an unknown outcome as
 * a permanent failure); rd::Completer::defer in <route_delivery/plugin.hpp> does that check. */
#define RD_OUTCOME_DEFER 3

/* ---- Log levels ---------------------------------------------------------------------------- */
#define RD_LOG_DEBUG 0
#define RD_LOG_INFO 1
#define RD_LOG_WARN 2
#define RD_LOG_ERROR 3

/* ---- Config key types (for rd_config_key.type) ---------------------------------------------- */
/* The host validates `plugins.<name>` against the plugin's declared keys and passes the section to
 * xCreate as a JSON object with every declared key present (default filled in) and normalised: */
/* JSON string */
#define RD_CONFIG_STRING 0
/* JSON integer */
#define RD_CONFIG_INT 1
/* JSON true/false */
#define RD_CONFIG_BOOL 2
/* Written "250ms", "10s", "5m" or a bare number of seconds; passed as JSON integer milliseconds. */
#define RD_CONFIG_DURATION 3
/* YAML sequence, or comma-separated in env; passed as array of strings. */
#define RD_CONFIG_LIST 4
/* JSON string, redacted by --check-config and never logged. */
#define RD_CONFIG_SECRET 5

/* rd_config_key.flags (1.2) */
/* The operator must set the key (in the file or its env variable) to a non-empty value; its
 * default is never used. */
#define RD_CONFIG_REQUIRED 1u
/* RD_CONFIG_INT, RD_CONFIG_DURATION: the value must be >= min_value (a duration in milliseconds).
 */
#define RD_CONFIG_HAS_MIN 2u
/* RD_CONFIG_INT, RD_CONFIG_DURATION: the value must be <= max_value (a duration in milliseconds).
 */
#define RD_CONFIG_HAS_MAX 4u

/* APPEND ONLY — never reorder or remove fields.
 *
 * A table of keys is an array, so its stride is sizeof(rd_config_key) as the plugin compiled it:
 * every key of one table has the same struct_size. The host reads the table of a plugin whose
 * descriptor says abi_minor < 2 with the 1.0 layout (the fields up to `description`) and ignores
 * the 1.2 fields; from abi_minor 2 on it steps by the first key's struct_size and reads the 1.2
 * fields. The host checks the declared constraints before xValidate and xCreate, in
 * `route-delivery --check-config` and at start-up alike, and refuses a value that breaks one with
 * a message naming the key, its line and the constraint. */
typedef struct rd_config_key {
  uint32_t struct_size;
  int32_t type;     /* RD_CONFIG_* */
  const char* name; /* key under plugins.<plugin name>, e.g. "timeout" */
  /* as it would be written in YAML ("10s", "1883", "true", "a,b"); NULL = "" */
  const char* default_value;
  const char* env;         /* environment variable that overrides it, or NULL */
  const char* description; /* one line, shown by `route-delivery plugins` */

  /* ---- 1.2 ---- */

  uint32_t flags; /* RD_CONFIG_REQUIRED | RD_CONFIG_HAS_MIN | RD_CONFIG_HAS_MAX */
  uint32_t reserved0;
  int64_t min_value; /* with RD_CONFIG_HAS_MIN; durations in milliseconds */
  int64_t max_value; /* with RD_CONFIG_HAS_MAX; durations in milliseconds */
  /* RD_CONFIG_STRING and each item of RD_CONFIG_LIST: NULL (anything), or the comma-separated
   * values allowed, compared exactly, e.g. "GET,POST,PUT". Empty is allowed unless
   * RD_CONFIG_REQUIRED. Not for other types (the host refuses the plugin). */
  const char* allowed_values;
} rd_config_key;

/* ---- One job attempt, borrowed by the plugin until it completes ------------------------------ */

/* APPEND ONLY — never reorder or remove fields. Strings are UTF-8, not necessarily NUL-terminated
 * in future versions: always use the _len fields. (Version 1 does NUL-terminate them.) */
typedef struct rd_job {
  uint32_t struct_size;
  uint32_t attempt;      /* this try's number, 1 for the first: the host's own count of real tries
                            (deferrals and redeliveries after a crash are not counted) */
  uint32_t max_attempts; /* nats.max_deliver; attempt == max_attempts is the last try */
  uint32_t reserved0;
  int64_t route_id;
  int64_t timeout_ms; /* the host gives up waiting for `complete` this long after xDeliver, or,
                         with RD_PLUGIN_REPORTS_STARTED, after `started` (as RETRY) */
  const char* tenant_id;
  size_t tenant_id_len;
  const char* topic; /* the device message's original topic */
  size_t topic_len;
  /* The job's `payload`: its JSON text exactly as published (validated, not re-serialised; key
   * order and spacing kept): the bytes to deliver. */
  const char* payload_json;
  size_t payload_json_len;
  const char* destination_config_json; /* the route's `destination_config` object, its JSON text as
                                          published ("{}" if absent or null) */
  size_t destination_config_json_len;
  const char* message_id; /* stable across redeliveries of the same job, e.g. "ROUTES:1234" */
  size_t message_id_len;
} rd_job;

/* ---- Result of one job attempt, copied by the host ------------------------------------------ */

/* APPEND ONLY — never reorder or remove fields. */
typedef struct rd_result {
  uint32_t struct_size;
  int32_t outcome; /* RD_OUTCOME_* */
  /* RETRY only: the destination's suggested delay (e.g. Retry-After); -1 = none */
  int64_t retry_after_ms;
  /* short human-readable reason, required unless OK; the host truncates it */
  const char* reason;
  size_t reason_len;
} rd_result;

/* ---- Services the host offers to the plugin ------------------------------------------------- */

typedef struct rd_host rd_host; /* opaque; pass back the `host` pointer from the services table */

/* APPEND ONLY — never reorder or remove fields. Check struct_size before calling a function added
 * after minor version 0. */
typedef struct rd_host_services {
  uint32_t struct_size;
  uint32_t abi_minor; /* the host's RD_ABI_VERSION_MINOR */
  rd_host* host;
  const char* host_version; /* e.g. "1.0.0" */

  /* Reports the outcome of `delivery_id` (from xDeliver). Exactly once per delivery; a second
   * call, or a call after the host timed the delivery out, is ignored and logged by the host. Any
   * thread. */
  void (*complete)(rd_host* host, uint64_t delivery_id, const rd_result* result);

  /* Structured log line attributed to this plugin. `message` is a short event name or sentence;
   * never put secrets in it. */
  void (*log)(rd_host* host, int32_t level, const char* message);

  /* Monotonic clock in nanoseconds (for latency), and wall clock in milliseconds since the
   * epoch. */
  uint64_t (*monotonic_ns)(rd_host* host);
  int64_t (*wall_ms)(rd_host* host);

  /* Metrics, exported on /metrics. Register once (in xCreate), then update by handle from any
   * thread. `name` is a Prometheus metric name, which the host prefixes with
   * "route_delivery_plugin_"; `labels` is either NULL or a Prometheus label list without braces,
   * e.g. "class=\"2xx\"". Registering the same name+labels twice returns the same handle.
   * Returns a handle >= 0, or -1 when the name or labels are invalid or the host already holds
   * 1024 plugin series (updates through -1 are ignored). */
  int32_t (*counter_register)(rd_host* host, const char* name, const char* labels,
                              const char* help);
  void (*counter_add)(rd_host* host, int32_t handle, double value);
  int32_t (*gauge_register)(rd_host* host, const char* name, const char* labels, const char* help);
  void (*gauge_set)(rd_host* host, int32_t handle, double value);
  /* Histogram of seconds, with the host's latency buckets (1 ms .. 30 s). */
  int32_t (*histogram_register)(rd_host* host, const char* name, const char* labels,
                                const char* help);
  void (*histogram_observe)(rd_host* host, int32_t handle, double seconds);

  /* ---- 1.1 ---- */

  /* Called by a plugin that sets RD_PLUGIN_REPORTS_STARTED when the job of `delivery_id` leaves
   * its queue, just before it is sent. Until this call the host treats the job as waiting for its
   * destination: it keeps the JetStream message alive and runs no timeout (bounded by
   * delivery.queue_timeout); from this call it waits `job->timeout_ms` for `complete`.
   * Returns 1: send it now. Returns 0: the host withdrew the job while it was queued (its
   * destination's circuit opened meanwhile, or it was queued longer than delivery.queue_timeout
   * and JetStream will hand it out again): do not send it; complete it with RD_OUTCOME_DEFER.
   * At most once per delivery, before `complete`; any thread. */
  int32_t (*started)(rd_host* host, uint64_t delivery_id);
} rd_host_services;

/* ---- The plugin descriptor ------------------------------------------------------------------ */

/* APPEND ONLY — never reorder or remove fields. */
typedef struct rd_plugin_descriptor {
  uint32_t struct_size; /* sizeof(rd_plugin_descriptor) as the plugin compiled it */
  uint32_t abi_major;   /* RD_ABI_VERSION_MAJOR */
  uint32_t abi_minor;   /* RD_ABI_VERSION_MINOR */
  uint32_t reserved0;
  const char* name;             /* plugin name, [a-z0-9_]+; its config section is plugins.<name> */
  const char* version;          /* plugin's own version, e.g. "1.2.0" */
  const char* destination_type; /* the route destination_type this plugin serves, e.g. "webhook" */
  const char* description;      /* one line */

  const rd_config_key* config_keys; /* array of `config_key_count` declared keys, or NULL */
  uint32_t config_key_count;
  uint32_t reserved1;

  /* Creates the plugin instance. `config_json` is the validated plugins.<name> object.
   * On success returns 0 and stores the instance in *out_instance. On failure returns non-zero and
   * writes a NUL-terminated message (what is wrong and what to do) into error[0..error_len). */
  int32_t (*xCreate)(const rd_host_services* services, const char* config_json, void** out_instance,
                     char* error, size_t error_len);

  /* Destroys the instance. No xDeliver is running or will run; completions that were never
   * reported are already timed out by the host. Must join the plugin's own threads. */
  void (*xDestroy)(void* instance);

  /* Starts delivering one job attempt. Must not block. Call services->complete(delivery_id, ...)
   * exactly once, from any thread, when the outcome is known. */
  void (*xDeliver)(void* instance, uint64_t delivery_id, const rd_job* job);

  /* Optional (may be NULL). Returns 1 when the plugin can deliver, 0 when it cannot (not
   * configured, destination unreachable); in both cases may write a NUL-terminated detail into
   * detail[0..len). */
  int32_t (*xHealth)(void* instance, char* detail, size_t detail_len);

  /* ---- 1.1 ---- */

  uint32_t flags; /* RD_PLUGIN_* bits */
  uint32_t reserved2;

  /* Optional (may be NULL). Writes the job's destination key — what the plugin connects to, e.g.
   * "https://example.com:443" — into key[0..key_len) (not necessarily NUL-terminated) and returns
   * its length; returns 0 when the job has none (the host then uses the route: tenant and route
   * id). The host's fairness share and circuit breaker are kept per key, so jobs of every route
   * that reach one server share one breaker. Called before xDeliver, under the same
   * serialisation; must be cheap and must not block. A key longer than key_len is cut. */
  size_t (*xDestination)(void* instance, const rd_job* job, char* key, size_t key_len);

  /* ---- 1.2 ---- */

  /* Optional (may be NULL). Checks a configuration without creating anything: `config_json` is
   * the plugins.<name> object exactly as xCreate would receive it (the declared constraints
   * already hold). Returns 0 when xCreate would accept it; otherwise non-zero with a
   * NUL-terminated message naming the key (e.g. "plugins.x.reconnect_max: must not be shorter
   * than reconnect_min") in error[0..error_len). Both `route-delivery --check-config` and
   * start-up call it, before any xCreate, so a CI gate refuses what start-up refuses. It runs on
   * the host's main thread, before xCreate and possibly in a process that never creates the
   * plugin: no connections, no threads, no files written, no services (it has none); reading a
   * file the config names (a CA bundle) is fine. The host reads it only when abi_minor >= 2. */
  int32_t (*xValidate)(const char* config_json, char* error, size_t error_len);
} rd_plugin_descriptor;

/* rd_plugin_descriptor.flags */
/* The plugin calls services->started for each job when it is sent (see `started`). */
#define RD_PLUGIN_REPORTS_STARTED 1u

/* Type of the exported entry function. Returns a pointer to a descriptor that lives forever. */
typedef const rd_plugin_descriptor* (*rd_plugin_entry_fn)(void);

/* Declaration of the entry function that every plugin defines:
 *   RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void) { return &descriptor; } */
RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ROUTE_DELIVERY_PLUGIN_H */
