/* One logging module for the whole daemon: levelled, format-checked,
 * key=value lines on stderr.
 *
 * Every line looks like
 *   ts=2026-11-22T10:00:00.123Z level=info module=raft event=leader_elected term=5
 * The format string passed to rc_log() starts with the event name (snake_case)
 * and continues with key=value pairs. Values that may contain spaces or come
 * from the network go through rc_log_quote() first. */
#ifndef RC_LOG_H
#define RC_LOG_H

#include <stddef.h>

enum rc_log_level { RC_LOG_DEBUG = 0, RC_LOG_INFO, RC_LOG_WARN, RC_LOG_ERROR };

void rc_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lines below this level are dropped. Default RC_LOG_INFO; the environment
 * variable RICOCHET_LOG_LEVEL (debug|info|warn|error) overrides it. */
void rc_log_set_level(int level);
int rc_log_level_parse(const char *name); /* -1 when unknown */
int rc_log_enabled(int level);

/* Writes src (len bytes, may hold any octets) into dst as a double-quoted
 * value with \" \\ and non-printables escaped (\xNN); truncates with "..."
 * when dst is too small. Returns dst, always NUL-terminated. */
const char *rc_log_quote(char *dst, size_t dst_size, const char *src, size_t len);

#define rc_debug(mod, ...) do { if (rc_log_enabled(RC_LOG_DEBUG)) rc_log(RC_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define rc_info(mod, ...)  rc_log(RC_LOG_INFO, mod, __VA_ARGS__)
#define rc_warn(mod, ...)  rc_log(RC_LOG_WARN, mod, __VA_ARGS__)
#define rc_error(mod, ...) rc_log(RC_LOG_ERROR, mod, __VA_ARGS__)

#endif
