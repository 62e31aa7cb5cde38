#include "node/base/rc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int log_min_level = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int rc_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void rc_log_set_level(int level)
{
    log_min_level = level;
}

int rc_log_enabled(int level)
{
    if (log_min_level < 0) {
        const char *env = getenv("RICOCHET_LOG_LEVEL");
        int l = env ? rc_log_level_parse(env) : -1;
        log_min_level = l >= 0 ? l : RC_LOG_INFO;
    }
    return level >= log_min_level;
}

void rc_log(int level, const char *module, const char *fmt, ...)
{
    if (!rc_log_enabled(level))
        return;
    if (level < RC_LOG_DEBUG || level > RC_LOG_ERROR)
        level = RC_LOG_ERROR;

    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s event=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[level], module);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n;
    if (m > 0)
        len += (size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m
                                                        : sizeof line - (size_t)n - 2;
    line[len++] = '\n';
    /* One write per line so that lines from concurrent writers never mix. */
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}

const char *rc_log_quote(char *dst, size_t dst_size, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (dst_size < 8) {
        if (dst_size)
            dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        char esc[4];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else {
            esc[k++] = (char)c;
        }
        if (o + k + 5 > dst_size) { /* room for ..." and NUL */
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(dst + o, esc, k);
        o += k;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}
