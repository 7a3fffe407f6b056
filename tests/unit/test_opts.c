/*
 * test_opts.c - the etcdfs command line (src/fs/opts.c): durations, sizes, long options and
 * their -o spellings, passthrough and refused options.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

#include "check.h"

static int64_t dur(const char *s)
{
    int64_t ms = -12345;
    return opts_parse_duration_ms(s, &ms) ? -1 : ms;
}

static void test_durations(void)
{
    CHECK(dur("5s") == 5000);
    CHECK(dur("500ms") == 500);
    CHECK(dur("1m") == 60000);
    CHECK(dur("1m30s") == 90000);
    CHECK(dur("1.5s") == 1500);
    CHECK(dur("2h") == 7200000);
    CHECK(dur("0") == 0);
    CHECK(dur("100us") == 1); /* rounded up: a timeout never becomes 0 by rounding */
    CHECK(dur("5") == -1);    /* etcdctl (Go) needs a unit */
    CHECK(dur("") == -1);
    CHECK(dur("-1s") == -1);
    CHECK(dur("5x") == -1);
    CHECK(dur("s") == -1);
    CHECK(dur("5 s") == -1);
}

static void test_sizes(void)
{
    uint64_t v;
    CHECK(opts_parse_size("1024", &v) == 0 && v == 1024);
    CHECK(opts_parse_size("512k", &v) == 0 && v == 512 * 1024);
    CHECK(opts_parse_size("1M", &v) == 0 && v == 1 << 20);
    CHECK(opts_parse_size("2GiB", &v) == 0 && v == (uint64_t)2 << 30);
    CHECK(opts_parse_size("1.5M", &v) == -1);
    CHECK(opts_parse_size("x", &v) == -1);
    CHECK(opts_parse_size("10q", &v) == -1);
}

static int parse(etcdfs_opts *o, char *err, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "etcdfs";
    va_list ap;
    va_start(ap, err);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return opts_parse(argc, argv, o, err, 256);
}

static void test_command_line(void)
{
    etcdfs_opts o;
    char err[256];
    CHECK(parse(&o, err, "--endpoints=127.0.0.1:1,127.0.0.1:2", "--prefix=/app", "-f",
                "--dial-timeout=2s", "/tmp", NULL) == 0);
    CHECK(!strcmp(o.endpoints, "127.0.0.1:1,127.0.0.1:2"));
    CHECK(!strcmp(o.prefix, "/app"));
    CHECK(o.foreground && o.dial_timeout_ms == 2000 && o.command_timeout_ms == 5000);
    CHECK(!strcmp(o.mountpoint, "/tmp") && !o.source);
    opts_free(&o);

    /* mount(8) style: SOURCE MOUNTPOINT -o opts, every long option as -o */
    CHECK(parse(&o, err, "etcd", "/tmp", "-o",
                "rw,endpoints=h:1,prefix=/x,command_timeout=500ms,uid=7,gid=8,umask=027,"
                "allow_other,quiet,max_file_size=1k,_netdev,noatime,dev,suid",
                NULL) == 0);
    CHECK(!strcmp(o.source, "etcd") && !strcmp(o.mountpoint, "/tmp"));
    CHECK(!strcmp(o.endpoints, "h:1") && !strcmp(o.prefix, "/x"));
    CHECK(o.command_timeout_ms == 500 && o.uid == 7 && o.gid == 8 && o.umask == 027);
    CHECK(o.allow_other && o.quiet && o.max_file_size == 1024);
    CHECK(o.fuse_opts && strstr(o.fuse_opts, "noatime") && strstr(o.fuse_opts, "rw"));
    CHECK(!strstr(o.fuse_opts, "_netdev"));
    opts_free(&o);

    CHECK(parse(&o, err, "-o", "ro", "/tmp", NULL) == 0);
    CHECK(o.ro && o.fuse_opts && strstr(o.fuse_opts, "ro"));
    opts_free(&o);

    /* refused */
    CHECK(parse(&o, err, "--bogus", "/tmp", NULL) == -1 && strstr(err, "--bogus"));
    opts_free(&o);
    CHECK(parse(&o, err, "-o", "bogus=1", "/tmp", NULL) == -1 && strstr(err, "bogus"));
    opts_free(&o);
    CHECK(parse(&o, err, "--dial-timeout=5", "/tmp", NULL) == -1 && strstr(err, "duration"));
    opts_free(&o);
    CHECK(parse(&o, err, "--password=secret", "/tmp", NULL) == -1 && !strstr(err, "secret"));
    opts_free(&o);
    CHECK(parse(&o, err, "--user=root:secret", "/tmp", NULL) == -1 && !strstr(err, "secret"));
    opts_free(&o);
    CHECK(parse(&o, err, "--consistency=sometimes", "/tmp", NULL) == -1);
    opts_free(&o);
    CHECK(parse(&o, err, NULL) == -1 && strstr(err, "mount point"));
    opts_free(&o);
    CHECK(parse(&o, err, "/nonexistent/dir/x", NULL) == -1 && strstr(err, "/nonexistent"));
    opts_free(&o);
    CHECK(parse(&o, err, "a", "b", "c", NULL) == -1);
    opts_free(&o);
    CHECK(parse(&o, err, "--help", NULL) == 0 && o.show_help);
    opts_free(&o);
}

int main(void)
{
    test_durations();
    test_sizes();
    test_command_line();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_opts: all checks passed\n");
    return failures ? 1 : 0;
}
