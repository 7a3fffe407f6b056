/* log.c - logging for the daemon (see log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* A progress line is rewritten in place ("\r"), so it only makes sense on a terminal. */
static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;
static bool progress_shown; /* [progress_mu] a line without its newline is on the terminal */

static bool progress_wanted(void)
{
    return !use_syslog && max_level >= LOG_INFO && isatty(STDERR_FILENO);
}

void log_progress(const char *fmt, ...)
{
    if (!progress_wanted())
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&progress_mu);
    fprintf(stderr, "\retcdfs: %s\033[K", line);
    fflush(stderr);
    progress_shown = true;
    pthread_mutex_unlock(&progress_mu);
}

void log_progress_end(void)
{
    pthread_mutex_lock(&progress_mu);
    if (progress_shown)
        fputc('\n', stderr);
    progress_shown = false;
    pthread_mutex_unlock(&progress_mu);
}
