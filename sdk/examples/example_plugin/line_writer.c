/*
 * line_writer.c — appends one line per delivered job to a file (line_writer.h).
 */
/* strdup() is POSIX, not C99: ask for it before any system header. */
#define _POSIX_C_SOURCE 200809L

#include "line_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int example_line_writer_open(example_line_writer* self, const char* path, char* error,
                             size_t error_len) {
  memset(self, 0, sizeof *self);
  self->path = strdup(path);
  if (self->path == NULL) {
    if (error != NULL && error_len > 0) snprintf(error, error_len, "example: out of memory");
    return 1;
  }
  self->file = fopen(path, "a");
  if (self->file == NULL) {
    /* Name the key and the value, and say what to do about it. */
    if (error != NULL && error_len > 0) {
      snprintf(error, error_len,
               "example: cannot open plugins.example.output '%s' for appending: %s; "
               "set it to a writable file or leave it empty",
               path, strerror(errno));
    }
    free(self->path);
    self->path = NULL;
    return 1;
  }
  pthread_mutex_init(&self->lock, NULL);
  return 0;
}

/* Appends the job's line. Returns 0, or an errno value. Strings in rd_job come with lengths: use
 * them rather than relying on NUL terminators (future ABI versions may not add them). */
int example_line_writer_append(example_line_writer* self, const rd_job* job) {
  int err = 0;
  pthread_mutex_lock(&self->lock);
  if (fwrite(job->message_id, 1, job->message_id_len, self->file) != job->message_id_len ||
      fputc(' ', self->file) == EOF ||
      fwrite(job->tenant_id, 1, job->tenant_id_len, self->file) != job->tenant_id_len ||
      fprintf(self->file, " %lld ", (long long)job->route_id) < 0 ||
      fwrite(job->payload_json, 1, job->payload_json_len, self->file) != job->payload_json_len ||
      fputc('\n', self->file) == EOF || fflush(self->file) != 0) {
    err = errno != 0 ? errno : EIO;
    clearerr(self->file);
  }
  pthread_mutex_unlock(&self->lock);
  return err;
}

void example_line_writer_close(example_line_writer* self) {
  if (self->file == NULL) return;
  fclose(self->file);
  pthread_mutex_destroy(&self->lock);
  free(self->path);
  memset(self, 0, sizeof *self);
}
