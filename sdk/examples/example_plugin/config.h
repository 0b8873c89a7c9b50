/*
 * config.h — the example plugin's configuration: its declared keys and reading the JSON object the
 * host passes to xCreate.
 */
#ifndef EXAMPLE_CONFIG_H
#define EXAMPLE_CONFIG_H

#include <route_delivery/plugin.h>
#include <stddef.h>
#include <stdint.h>

/* Every key under `plugins.example` in the daemon's YAML must be declared here; the host refuses
 * unknown keys with an error naming the key and line. The descriptor points at this table. */
#define EXAMPLE_CONFIG_KEY_COUNT 1 /* a constant, for the static descriptor in example_plugin.c */
extern const rd_config_key example_config_keys[EXAMPLE_CONFIG_KEY_COUNT];

/* plugins.example, as read from xCreate's `config_json`. */
typedef struct example_config {
  char* output; /* malloc'd; NULL when `output` is empty or absent */
} example_config;

/* Reads `config_json` (may be NULL: nothing set). Returns 0, or 1 with a NUL-terminated message
 * naming the key in error[0..error_len). Free the result with example_config_free. */
int example_config_read(const char* config_json, example_config* out, char* error,
                        size_t error_len);
void example_config_free(example_config* config);

#endif /* EXAMPLE_CONFIG_H */
