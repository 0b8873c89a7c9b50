/*
 * config.c — the declared configuration keys and a reader for the config JSON.
 *
 * The host validates `plugins.example` against the keys below, fills in defaults, applies the
 * environment overrides and passes xCreate a JSON object with every declared key present and
 * normalised by type, e.g. {"output":"/var/log/ex.txt"} (docs/plugin-authoring.md, "Configuration
 * keys"). A C++ plugin reads it with rd::ConfigReader from <route_delivery/plugin.hpp>.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `env` names an environment variable that overrides the file (handy in containers). */
const rd_config_key example_config_keys[EXAMPLE_CONFIG_KEY_COUNT] = {
    {
        .struct_size = sizeof(rd_config_key),
        .type = RD_CONFIG_STRING,
        .name = "output",
        .default_value = "",
        .env = "EXAMPLE_OUTPUT",
        .description = "file to append one line per delivered job to; empty = deliver nowhere",
        /* ABI 1.2 constraints, checked by the host in --check-config and at start-up before
         * xValidate and xCreate. This key needs none; others would say, for example:
         *   .flags = RD_CONFIG_REQUIRED                       the operator must set it
         *   .flags = RD_CONFIG_HAS_MIN | RD_CONFIG_HAS_MAX,
         *   .min_value = 1, .max_value = 65535                an RD_CONFIG_INT port
         *   .allowed_values = "text,json"                     an RD_CONFIG_STRING choice */
        .flags = 0,
        .allowed_values = NULL,
    },
};

/* ---- Reading the config JSON ------------------------------------------------------------------
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

int example_config_read(const char* config_json, example_config* out, char* error,
                        size_t error_len) {
  out->output = NULL;
  if (json_get_string(config_json != NULL ? config_json : "{}", "output", &out->output) != 0) {
    if (error != NULL && error_len > 0) {
      snprintf(error, error_len, "example: plugins.example.output must be a string");
    }
    return 1;
  }
  if (out->output != NULL && out->output[0] == '\0') {
    free(out->output);
    out->output = NULL;
  }
  return 0;
}

void example_config_free(example_config* config) {
  free(config->output);
  config->output = NULL;
}
