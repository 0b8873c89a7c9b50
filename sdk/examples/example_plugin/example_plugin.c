/*
 * example_plugin.c — a complete route-delivery destination plugin in plain C99.
 *
 * Copy this folder to start a new plugin. It is deliberately small but real: it serves the
 * destination_type "example" and, when `plugins.example.output` names a file, appends one line per
 * delivered job to it:
 *
 *     <message_id> <tenant_id> <route_id> <payload_json>
 *
 * What it shows, in the order a reader meets it:
 *   1. the declared configuration keys (the host validates them and fills in defaults),
 *   2. the instance: state created in xCreate and freed in xDestroy,
 *   3. reading the config JSON the host passes to xCreate,
 *   4. registering a metric and logging through the host services,
 *   5. xDeliver: doing the work and reporting exactly one result with services->complete,
 *   6. xHealth, the descriptor and the one exported entry function.
 *
 * The only header a plugin needs is <route_delivery/plugin.h>; read its top comment for the full
 * life cycle, threading and ownership rules. Build it with CMakeLists.txt next to this file.
 */

/* strdup() and friends are POSIX, not C99: ask for them before any system header. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <route_delivery/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. Configuration keys ------------------------------------------------------------------
 *
 * Every key under `plugins.example` in the daemon's YAML must be declared here; the host refuses
 * unknown keys with an error naming the key and line. The host passes the validated section to
 * xCreate as a JSON object with every declared key present, e.g. {"output":"/var/log/ex.txt"}.
 * `env` names an environment variable that overrides the file (handy in containers). */
static const rd_config_key example_config_keys[] = {
    {
        .struct_size = sizeof(rd_config_key),
        .type = RD_CONFIG_STRING,
        .name = "output",
        .default_value = "",
        .env = "EXAMPLE_OUTPUT",
        .description = "file to append one line per delivered job to; empty = deliver nowhere",
    },
};

/* ---- 2. The instance --------------------------------------------------------------------------
 *
 * One per xCreate. The host serialises xDeliver calls, but a plugin that completes on its own
 * threads (most real plugins: an HTTP client, a broker connection) touches this state from several
 * threads at once. This one writes synchronously inside xDeliver, yet still guards the file with a
 * mutex: it is the pattern to keep when you make delivery asynchronous. */
typedef struct example_instance {
  const rd_host_services* services; /* borrowed from the host; valid until xDestroy returns */
  char* output_path;                /* NULL when `output` is empty */
  FILE* output;                     /* opened once in xCreate, in append mode */
  pthread_mutex_t output_lock;      /* serialises writes to `output` */
  int32_t delivered_counter;        /* metric handle, or -1 when the host refused the name */
} example_instance;

/* Writes a message for the host into the caller's error buffer (always NUL-terminated). */
static void set_error(char* error, size_t error_len, const char* message) {
  if (error != NULL && error_len > 0) snprintf(error, error_len, "%s", message);
}

/* ---- 3. Reading the config JSON -------------------------------------------------------------
 *
 * A real plugin would use a JSON library (cJSON, jansson, yyjson, ...). The example keeps to the
 * C standard library, so it carries a tiny reader that is just enough for a flat object of the
 * form the host produces: {"key":value,...}. It decodes one string value by key. */

static const char* skip_ws(const char* p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
  return p;
}

/* Appends the UTF-8 encoding of code point `cp` to out[*n]. `out` has room (see json_string). */
static void put_utf8(char* out, size_t* n, unsigned long cp) {
  if (cp < 0x80) {
    out[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*n)++] = (char)(0xC0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xE0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*n)++] = (char)(0xF0 | (cp >> 18));
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static int hex4(const char* p, unsigned long* out) {
  unsigned long v = 0;
  int i;
  for (i = 0; i < 4; ++i) {
    const char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned long)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

/* Parses the JSON string starting at `p` (on its opening quote). On success returns the position
 * after the closing quote and, when `value` is not NULL, stores a malloc'd decoded copy in it. */
static const char* json_string(const char* p, char** value) {
  const char* start = p + 1;
  const char* q = start;
  char* out;
  size_t n = 0;
  if (*p != '"') return NULL;
  while (*q != '"') { /* find the end first, to size the buffer */
    if (*q == '\0') return NULL;
    if (*q == '\\' && q[1] != '\0') ++q;
    ++q;
  }
  if (value == NULL) return q + 1;
  /* Decoded text is never longer than the escaped text. */
  out = malloc((size_t)(q - start) + 1);
  if (out == NULL) return NULL;
  for (p = start; p < q; ++p) {
    unsigned long cp;
    if (*p != '\\') {
      out[n++] = *p;
      continue;
    }
    switch (*++p) {
      case 'b':
        out[n++] = '\b';
        break;
      case 'f':
        out[n++] = '\f';
        break;
      case 'n':
        out[n++] = '\n';
        break;
      case 'r':
        out[n++] = '\r';
        break;
      case 't':
        out[n++] = '\t';
        break;
      case 'u':
        if (hex4(p + 1, &cp) != 0) goto bad;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair encodes one code point */
          unsigned long lo;
          if (p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            goto bad;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        put_utf8(out, &n, cp);
        break;
      default:
        out[n++] = *p;
        break; /* \" \\ \/ */
    }
  }
  out[n] = '\0';
  *value = out;
  return q + 1;
bad:
  free(out);
  return NULL;
}

/* Skips any JSON value (string, number, literal, nested object or array). */
static const char* json_skip(const char* p) {
  int depth = 0;
  p = skip_ws(p);
  do {
    if (*p == '\0') return NULL;
    if (*p == '"') {
      p = json_string(p, NULL);
      if (p == NULL) return NULL;
      continue;
    }
    if (*p == '{' || *p == '[') ++depth;
    if (*p == '}' || *p == ']') --depth;
    ++p;
  } while (depth > 0 || (*p != ',' && *p != '}' && *p != ']' && *p != '\0'));
  return p;
}

/* Finds top-level key `key` in object `json`. Returns 0 and a malloc'd copy of its string value in
 * *value (NULL when the key is absent), or -1 when the JSON is malformed or the value is no string.
 */
static int json_get_string(const char* json, const char* key, char** value) {
  const char* p = skip_ws(json);
  *value = NULL;
  if (*p++ != '{') return -1;
  p = skip_ws(p);
  if (*p == '}') return 0;
  for (;;) {
    char* name = NULL;
    int match;
    p = json_string(skip_ws(p), &name);
    if (p == NULL) return -1;
    match = strcmp(name, key) == 0;
    free(name);
    p = skip_ws(p);
    if (*p++ != ':') return -1;
    p = skip_ws(p);
    if (match) {
      if (*p != '"') return -1;
      return json_string(p, value) != NULL ? 0 : -1;
    }
    p = json_skip(p);
    if (p == NULL) return -1;
    p = skip_ws(p);
    if (*p == '}') return 0;
    if (*p++ != ',') return -1;
  }
}

/* ---- Life cycle -------------------------------------------------------------------------------
 *
 * xCreate runs once, on the host's main thread, before any delivery. Check everything that can be
 * checked here (open the file, connect, parse URLs): an error now stops start-up with a clear
 * message, instead of dead-lettering every job later. */
static int32_t example_create(const rd_host_services* services, const char* config_json,
                              void** out_instance, char* error, size_t error_len) {
  example_instance* self;
  char* output = NULL;

  /* The services table grows with minor versions: check that a function exists before using one
   * added after minor 0. Everything used here is in minor 0, so this is only a demonstration. */
  if (!RD_HAS_FIELD(services, rd_host_services, histogram_observe)) {
    set_error(error, error_len, "example: the host's services table is too old for this plugin");
    return 1;
  }
  if (json_get_string(config_json, "output", &output) != 0) {
    set_error(error, error_len, "example: plugins.example.output must be a string");
    return 1;
  }

  self = calloc(1, sizeof *self);
  if (self == NULL) {
    free(output);
    set_error(error, error_len, "example: out of memory");
    return 1;
  }
  self->services = services;
  if (output != NULL && output[0] != '\0') {
    self->output_path = output;
    self->output = fopen(output, "a");
    if (self->output == NULL) {
      /* Name the key and the value, and say what to do about it. */
      if (error != NULL && error_len > 0) {
        snprintf(error, error_len,
                 "example: cannot open plugins.example.output '%s' for appending: %s; "
                 "set it to a writable file or leave it empty",
                 output, strerror(errno));
      }
      free(output);
      free(self);
      return 1;
    }
  } else {
    free(output);
  }
  pthread_mutex_init(&self->output_lock, NULL);

  /* Metrics are registered once, here; the host exports this one on /metrics as
   * route_delivery_plugin_example_delivered_total. Updating it later is cheap and thread-safe. */
  self->delivered_counter = services->counter_register(services->host, "example_delivered_total",
                                                       NULL, "Jobs the example plugin delivered.");

  services->log(services->host, RD_LOG_INFO,
                self->output != NULL
                    ? "example plugin ready, appending deliveries to a file"
                    : "example plugin ready, output is empty: deliveries go nowhere");
  *out_instance = self;
  return 0;
}

/* xDestroy runs once at shutdown, after the last xDeliver. A plugin with threads joins them here.
 */
static void example_destroy(void* instance) {
  example_instance* self = instance;
  if (self->output != NULL) fclose(self->output);
  pthread_mutex_destroy(&self->output_lock);
  free(self->output_path);
  free(self);
}

/* ---- 5. Delivery ------------------------------------------------------------------------------
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

/* Appends the job's line. Returns 0, or an errno value. Strings in rd_job come with lengths: use
 * them rather than relying on NUL terminators (future ABI versions may not add them). */
static int example_write_line(example_instance* self, const rd_job* job) {
  int err = 0;
  pthread_mutex_lock(&self->output_lock);
  if (fwrite(job->message_id, 1, job->message_id_len, self->output) != job->message_id_len ||
      fputc(' ', self->output) == EOF ||
      fwrite(job->tenant_id, 1, job->tenant_id_len, self->output) != job->tenant_id_len ||
      fprintf(self->output, " %lld ", (long long)job->route_id) < 0 ||
      fwrite(job->payload_json, 1, job->payload_json_len, self->output) != job->payload_json_len ||
      fputc('\n', self->output) == EOF || fflush(self->output) != 0) {
    err = errno != 0 ? errno : EIO;
    clearerr(self->output);
  }
  pthread_mutex_unlock(&self->output_lock);
  return err;
}

/* Called once per job attempt; the host never runs two at once for one instance. It must not
 * block: a plugin that talks to the network queues the job for its own threads and returns.
 * Appending one line to a local file is quick, so this plugin does the work here and completes
 * synchronously from inside xDeliver, which the ABI allows.
 *
 * The job's strings are borrowed until complete() is called: copy what you need before that. */
static void example_deliver(void* instance, uint64_t delivery_id, const rd_job* job) {
  example_instance* self = instance;

  if (self->output != NULL) {
    const int err = example_write_line(self, job);
    if (err != 0) {
      /* A full disk may clear up: RETRY lets the host try again after its back-off and
       * dead-letter the job when attempts run out. A job that can never succeed as written (bad
       * destination_config) would be RD_OUTCOME_PERMANENT instead. */
      char reason[256];
      snprintf(reason, sizeof reason, "example: cannot write to %s: %s", self->output_path,
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

/* ---- 6. Health, descriptor and entry point ------------------------------------------------- */

/* Optional. Called from the host's HTTP thread for /health, concurrently with deliveries: keep it
 * cheap and thread-safe. This plugin is always able to deliver. */
static int32_t example_health(void* instance, char* detail, size_t detail_len) {
  const example_instance* self = instance;
  if (detail != NULL && detail_len > 0) {
    snprintf(detail, detail_len, "%s", self->output != NULL ? "writing to file" : "no output");
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
    .config_key_count = (uint32_t)(sizeof example_config_keys / sizeof example_config_keys[0]),
    .xCreate = example_create,
    .xDestroy = example_destroy,
    .xDeliver = example_deliver,
    .xHealth = example_health, /* optional: NULL when the plugin has nothing to report */
};

/* The one exported symbol. Everything else is hidden (the CMake helper builds with
 * -fvisibility=hidden), so plugins never clash with each other or with the host. */
RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void) {
  return &example_descriptor;
}
