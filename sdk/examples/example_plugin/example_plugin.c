/*
 * example_plugin.c — a complete route-delivery destination plugin in plain C99: the entry point,
 * the descriptor and the life cycle.
 *
 * Copy this folder to start a new plugin. It is deliberately small but real: it serves the
 * destination_type "example" and, when `plugins.example.output` names a file, appends one line per
 * delivered job to it:
 *
 *     <message_id> <tenant_id> <route_id> <payload_json>
 *
 * It has the layout every bundled plugin has (README.md in this folder lists its keys, outcomes
 * and metrics):
 *   example_plugin.c   this file: the instance, xCreate/xDestroy/xDeliver/xHealth, the descriptor
 *                      and the one exported entry function
 *   config.{h,c}       the declared configuration keys and reading the config JSON
 *   line_writer.{h,c}  the delivery itself: appending a job's line to the file
 *
 * The only header a plugin needs is <route_delivery/plugin.h>; read its top comment for the full
 * life cycle, threading and ownership rules. Build it with CMakeLists.txt next to this file.
 */
#include <route_delivery/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "line_writer.h"

/* ---- The instance -----------------------------------------------------------------------------
 *
 * One per xCreate. The host serialises xDeliver calls, but a plugin that completes on its own
 * threads (most real plugins: an HTTP client, a broker connection) touches this state from several
 * threads at once. This one writes synchronously inside xDeliver, yet the writer still guards the
 * file with a mutex: it is the pattern to keep when you make delivery asynchronous. */
typedef struct example_instance {
  const rd_host_services* services; /* borrowed from the host; valid until xDestroy returns */
  int has_output;                   /* 0 when `output` is empty: deliveries go nowhere */
  example_line_writer writer;       /* the output file, when has_output */
  int32_t delivered_counter;        /* metric handle, or -1 when the host refused the name */
} example_instance;

/* Writes a message for the host into the caller's error buffer (always NUL-terminated). */
static void set_error(char* error, size_t error_len, const char* message) {
  if (error != NULL && error_len > 0) snprintf(error, error_len, "%s", message);
}

/* ---- Life cycle -------------------------------------------------------------------------------
 *
 * xCreate runs once, on the host's main thread, before any delivery. Check everything that can be
 * checked here (open the file, connect, parse URLs): an error now stops start-up with a clear
 * message, instead of dead-lettering every job later. */
static int32_t example_create(const rd_host_services* services, const char* config_json,
                              void** out_instance, char* error, size_t error_len) {
  example_instance* self;
  example_config config;

  /* The services table grows with minor versions: check that a function exists before using one
   * added after minor 0. Everything used here is in minor 0, so this is only a demonstration. */
  if (!RD_HAS_FIELD(services, rd_host_services, histogram_observe)) {
    set_error(error, error_len, "example: the host's services table is too old for this plugin");
    return 1;
  }
  if (example_config_read(config_json, &config, error, error_len) != 0) return 1;

  self = calloc(1, sizeof *self);
  if (self == NULL) {
    example_config_free(&config);
    set_error(error, error_len, "example: out of memory");
    return 1;
  }
  self->services = services;
  if (config.output != NULL) {
    if (example_line_writer_open(&self->writer, config.output, error, error_len) != 0) {
      example_config_free(&config);
      free(self);
      return 1;
    }
    self->has_output = 1;
  }
  example_config_free(&config);

  /* Metrics are registered once, here; the host exports this one on /metrics as
   * route_delivery_plugin_example_delivered_total. Updating it later is cheap and thread-safe. */
  self->delivered_counter = services->counter_register(services->host, "example_delivered_total",
                                                       NULL, "Jobs the example plugin delivered.");

  services->log(services->host, RD_LOG_INFO,
                self->has_output ? "example plugin ready, appending deliveries to a file"
                                 : "example plugin ready, output is empty: deliveries go nowhere");
  *out_instance = self;
  return 0;
}

/* Optional (ABI 1.2). `route-delivery --check-config` and start-up call it before any xCreate, so
 * a CI gate refuses the configurations xCreate would refuse. It must create nothing: no files
 * opened for writing, no threads, no connections. */
static int32_t example_validate(const char* config_json, char* error, size_t error_len) {
  example_config config;
  if (example_config_read(config_json, &config, error, error_len) != 0) return 1;
  example_config_free(&config);
  return 0;
}

/* xDestroy runs once at shutdown, after the last xDeliver. A plugin with threads joins them here.
 */
static void example_destroy(void* instance) {
  example_instance* self = instance;
  if (self->has_output) example_line_writer_close(&self->writer);
  free(self);
}

/* ---- Delivery ---------------------------------------------------------------------------------
 */

/* Reports one outcome. `reason` is copied by the host before complete() returns, so a stack
 * buffer is fine. */
static void example_complete(const example_instance* self, uint64_t delivery_id, int32_t outcome,
                             const char* reason) {
  rd_result result;
  memset(&result, 0, sizeof result);
  result.struct_size = sizeof result; /* tells the host which fields this plugin knows */
  result.outcome = outcome;
  result.retry_after_ms = -1; /* no suggestion: the host's back-off decides */
  result.reason = reason;
  result.reason_len = reason != NULL ? strlen(reason) : 0;
  self->services->complete(self->services->host, delivery_id, &result);
}

/* Called once per job attempt; the host never runs two at once for one instance. It must not
 * block: a plugin that talks to the network queues the job for its own threads and returns.
 * Appending one line to a local file is quick, so this plugin does the work here and completes
 * synchronously from inside xDeliver, which the ABI allows.
 *
 * The job's strings are borrowed until complete() is called: copy what you need before that. */
static void example_deliver(void* instance, uint64_t delivery_id, const rd_job* job) {
  example_instance* self = instance;

  if (self->has_output) {
    const int err = example_line_writer_append(&self->writer, job);
    if (err != 0) {
      /* A full disk may clear up: RETRY lets the host try again after its back-off and
       * dead-letter the job when attempts run out. A job that can never succeed as written (bad
       * destination_config) would be RD_OUTCOME_PERMANENT instead. */
      char reason[256];
      snprintf(reason, sizeof reason, "example: cannot write to %s: %s", self->writer.path,
               strerror(err));
      example_complete(self, delivery_id, RD_OUTCOME_RETRY, reason);
      return;
    }
  }

  if (self->delivered_counter >= 0) {
    self->services->counter_add(self->services->host, self->delivered_counter, 1.0);
  }
  /* Per-job logging belongs at debug: the host drops it unless log.level is debug. */
  self->services->log(self->services->host, RD_LOG_DEBUG, "example: job delivered");
  example_complete(self, delivery_id, RD_OUTCOME_OK, NULL);
}

/* ---- Health, descriptor and entry point ------------------------------------------------- */

/* Optional. Called from the host's HTTP thread for /health, concurrently with deliveries: keep it
 * cheap and thread-safe. This plugin is always able to deliver. */
static int32_t example_health(void* instance, char* detail, size_t detail_len) {
  const example_instance* self = instance;
  if (detail != NULL && detail_len > 0) {
    snprintf(detail, detail_len, "%s", self->has_output ? "writing to file" : "no output");
  }
  return 1;
}

/* The descriptor lives for the life of the process (the host never unloads a plugin). */
static const rd_plugin_descriptor example_descriptor = {
    /* How much of this struct the plugin filled in: lets a newer host tell which fields exist. */
    .struct_size = sizeof(rd_plugin_descriptor),
    .abi_major = RD_ABI_VERSION_MAJOR, /* must equal the host's, or the plugin is refused */
    .abi_minor = RD_ABI_VERSION_MINOR,
    .name = "example",             /* [a-z0-9_]+; its config section is plugins.example */
    .version = "1.0.0",            /* the plugin's own version, shown by `route-delivery plugins` */
    .destination_type = "example", /* routes with this destination_type come here */
    .description = "Example plugin: appends each delivered job to a file",
    .config_keys = example_config_keys,
    .config_key_count = EXAMPLE_CONFIG_KEY_COUNT,
    .xCreate = example_create,
    .xDestroy = example_destroy,
    .xDeliver = example_deliver,
    .xHealth = example_health,     /* optional: NULL when the plugin has nothing to report */
    .xValidate = example_validate, /* optional (1.2): NULL when xCreate's checks need nothing */
};

/* The one exported symbol. Everything else is hidden (the CMake helper builds with
 * -fvisibility=hidden), so plugins never clash with each other or with the host. */
RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void) {
  return &example_descriptor;
}
