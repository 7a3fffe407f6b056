/* log.c - logging for the daemon (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool use_syslog;
/* Messages above this syslog priority are dropped (set before any thread starts). */
static int max_level = LOG_INFO;

void log_init(bool foreground, bool debug)
{
    (void)foreground;
    max_level = debug ? LOG_DEBUG : LOG_INFO;
}

void log_set_level(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (!strcmp(name, levels[i].name))
            max_level = levels[i].level;
}

void log_to_syslog(void)
{
    openlog("etcdfs", LOG_PID, LOG_DAEMON);
    use_syslog = true;
}

bool log_debug_enabled(void)
{
    return max_level >= LOG_DEBUG;
}

static const char *level_tag(int level)
{
    if (level <= LOG_ERR)
        return "error: ";
    return level == LOG_WARNING ? "warning: " : "";
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    if (level > max_level)
        return;
    va_start(ap, fmt);
    if (use_syslog) {
        vsyslog(level, fmt, ap);
    } else {
        /* One write per line so that lines of different threads do not interleave. */
        char line[1024];
        int n = snprintf(line, sizeof line, "etcdfs: %s", level_tag(level));
        int m = vsnprintf(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
        n += m < 0 ? 0 : m;
        if ((size_t)n > sizeof line - 2)
            n = sizeof line - 2;
        line[n++] = '\n';
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
