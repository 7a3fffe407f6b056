/* log.c - logging for the daemon (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool use_syslog;
static bool debug_on;

void log_init(bool foreground, bool debug)
{
    (void)foreground;
    debug_on = debug;
}

void log_to_syslog(void)
{
    openlog("etcdfs", LOG_PID, LOG_DAEMON);
    use_syslog = true;
}

bool log_debug_enabled(void)
{
    return debug_on;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (use_syslog) {
        vsyslog(level, fmt, ap);
    } else {
        /* One write per line so that lines of different threads do not interleave. */
        char line[1024];
        int n = vsnprintf(line, sizeof line - 1, fmt, ap);
        if (n < 0)
            n = 0;
        if ((size_t)n > sizeof line - 2)
            n = sizeof line - 2;
        line[n++] = '\n';
        fwrite("etcdfs: ", 1, 8, stderr);
        fwrite(line, 1, (size_t)n, stderr);
        fflush(stderr);
    }
    va_end(ap);
}

const char *log_key(const void *key, size_t len, char *buf, size_t buf_size)
{
    const unsigned char *k = key;
    size_t n = 0, i = 0;
    for (; i < len && n + 8 < buf_size; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
            buf[n++] = (char)k[i];
        else
            n += (size_t)snprintf(buf + n, buf_size - n, "\\x%02x", k[i]);
    }
    if (i < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}
