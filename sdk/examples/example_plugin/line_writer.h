/*
 * line_writer.h — the example plugin's delivery: one line per job appended to the output file,
 *
 *     <message_id> <tenant_id> <route_id> <payload_json>
 *
 * A real plugin puts its network client here (an HTTP client, a broker connection), usually with
 * threads of its own; the file name says what the delivery does.
 */
#ifndef EXAMPLE_LINE_WRITER_H
#define EXAMPLE_LINE_WRITER_H

#include <pthread.h>
#include <route_delivery/plugin.h>
#include <stddef.h>
#include <stdio.h>

typedef struct example_line_writer {
  char* path;           /* malloc'd copy of the file name, for messages */
  FILE* file;           /* opened once, in append mode */
  pthread_mutex_t lock; /* serialises appends to `file` */
} example_line_writer;

/* Opens `path` for appending. Returns 0, or 1 with a NUL-terminated message in error[0..error_len)
 * that names plugins.example.output, the file and what to do. */
int example_line_writer_open(example_line_writer* writer, const char* path, char* error,
                             size_t error_len);

/* Appends the job's line. Returns 0, or an errno value. Thread-safe. */
int example_line_writer_append(example_line_writer* writer, const rd_job* job);

void example_line_writer_close(example_line_writer* writer);

#endif /* EXAMPLE_LINE_WRITER_H */
