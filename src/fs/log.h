/* log.h - one line per event: stderr in the foreground, syslog when daemonized.
 * Never pass a value or a secret to these functions; keys are fine (escaped for printing). */
#ifndef ETCDFS_LOG_H
#define ETCDFS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

void log_init(bool foreground, bool debug);
/* --log-level: "error", "warning", "info" or "debug" (validated by opts_parse). Messages of a
 * lower priority are dropped; "debug" logs every operation, also when daemonized (syslog). */
void log_set_level(const char *name);
/* Switch to syslog (after daemonizing). */
void log_to_syslog(void);
bool log_debug_enabled(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Long work (the first listing of a huge directory): a line rewritten in place on stderr,
 * only in the foreground on a terminal; nothing otherwise. log_progress_end() ends the line. */
void log_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_progress_end(void);
/* A printable form of a key (non-printable bytes as \xNN, at most ~200 chars) in buf. */
const char *log_key(const void *key, size_t len, char *buf, size_t buf_size);

#define LOG_KEY_BUF 224
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_debug_enabled())                                                                   \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
