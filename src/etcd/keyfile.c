/* keyfile.c - loading value-encryption keys from a key file (format in etcdc.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"

#define MAX_KEY_FILE 65536

void etcdc_config_set_allow_plaintext(etcdc_config *cfg, bool allow)
{
    cfg->allow_plaintext = allow;
}

size_t etcdc_envelope_overhead(void)
{
    return ETCDC_ENV_OVERHEAD;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parses "<id> <64 hex>" lines into cfg. */
static etcdc_code parse_text(etcdc_config *cfg, char *text, const char *path, etcdc_error *err)
{
    int line_no = 0;
    size_t added = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        line_no++;
        line += strspn(line, " \t\r");
        if (!*line || *line == '#')
            continue;
        char *end;
        long id = strtol(line, &end, 10);
        if (end == line || id < 1 || id > 255 || (*end != ' ' && *end != '\t'))
            return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                    "%s:%d: expected '<key id 1-255> <64 hex digits>'", path,
                                    line_no);
        end += strspn(end, " \t");
        uint8_t key[32];
        size_t i = 0;
        for (; i < 32; i++) {
            int hi = hexval(end[2 * i]), lo = hi < 0 ? -1 : hexval(end[2 * i + 1]);
            if (hi < 0 || lo < 0)
                break;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        char *rest = end + 2 * i;
        rest += strspn(rest, " \t\r");
        etcdc_code rc = i == 32 && !*rest ? etcdc_config_add_encryption_key(cfg, (uint8_t)id, key)
                                          : ETCDC_ERR_INVALID_ARGUMENT;
        OPENSSL_cleanse(key, sizeof key);
        if (rc != ETCDC_OK)
            return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                                    "%s:%d: key id %ld: need exactly 64 hex digits, and each "
                                    "id once",
                                    path, line_no, id);
        added++;
    }
    if (added == 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "%s holds no key", path);
    return ETCDC_OK;
}

etcdc_code etcdc_config_load_key_file(etcdc_config *cfg, const char *path, etcdc_error *err)
{
    etcdc__clear_error(err);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "cannot open key file %s: %s",
                                path, strerror(errno));
    struct stat st;
    etcdc_code rc = ETCDC_OK;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        rc = etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                              "key file %s is not a regular file", path);
    else if (st.st_mode & 077)
        rc = etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0,
                              "key file %s is accessible by group or others (mode %03o): "
                              "run chmod 600 %s",
                              path, (unsigned)(st.st_mode & 0777), path);
    else if (st.st_size > MAX_KEY_FILE)
        rc = etcdc__set_error(err, ETCDC_ERR_INVALID_ARGUMENT, 0, "key file %s is too large", path);
    if (rc != ETCDC_OK) {
        close(fd);
        return rc;
    }
    char *buf = calloc(1, MAX_KEY_FILE + 1);
    ssize_t len = 0;
    if (buf)
        for (ssize_t n; len < MAX_KEY_FILE && (n = read(fd, buf + len, MAX_KEY_FILE - len)) > 0;)
            len += n;
    close(fd);
    if (!buf)
        return etcdc__set_error(err, ETCDC_ERR_NO_MEMORY, 0, "out of memory");
    if (len == 32) {
        rc = etcdc_config_add_encryption_key(cfg, 1, (const uint8_t *)buf);
        if (rc != ETCDC_OK)
            etcdc__set_error(err, rc, 0, "key id 1 is already configured");
    } else {
        rc = parse_text(cfg, buf, path, err);
    }
    OPENSSL_cleanse(buf, MAX_KEY_FILE + 1);
    free(buf);
    return rc;
}
