/* `ricochetctl classify [--json] FILE...`: offline bounce analysis (DESIGN §7).
 * One line per recipient: file, recipient, reason, hardbounce (1, 0, or empty
 * when the mail is not a bounce), smtp_code, enhanced_status; tab-separated,
 * or one JSON object per line with --json (plus kind and feedback_type).
 * A mail that yields no recipient prints one line with an empty recipient.
 * Exit status: 0, 1 if some file could not be read or analysed, 2 on usage. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/ctl_classify.h"
#include "smtp/bounce.h"

static char *ctl_classify_read(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            if (cap > max) /* one byte over max is enough to be refused */
                break;
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void ctl_classify_print(const char *file, const char *rcpt, const char *reason, int hard, int code,
                               const char *status, const char *kind, const char *ftype,
                               const struct bounce_rcpt *x, int json)
{
    char hb[16] = "", sc[16] = "";
    if (hard >= 0)
        snprintf(hb, sizeof hb, "%d", hard);
    if (code > 0)
        snprintf(sc, sizeof sc, "%d", code);
    if (!json) {
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", file, rcpt, reason, hb, sc, status);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "recipient", json_string(rcpt));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "hardbounce", hard >= 0 ? json_integer(hard) : json_null());
    json_object_set_new(o, "smtp_code", code > 0 ? json_integer(code) : json_null());
    json_object_set_new(o, "enhanced_status", json_string(status));
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "feedback_type", json_string(ftype));
    if (x != NULL) {
        json_object_set_new(o, "original_recipient", json_string(x->original));
        json_object_set_new(o, "action", json_string(x->action));
        json_object_set_new(o, "remote_mta", json_string(x->remote_mta));
        json_object_set_new(o, "diagnostic", json_string(x->diagnostic));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
}

int ctl_classify_main(int argc, char **argv)
{
    int json = 0, first = 1, rc = 0;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--json") == 0)
            json = 1;
        else if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
            puts("usage: classify [--json] FILE...\n"
                 "prints file, recipient, reason, hardbounce, smtp_code, enhanced_status per recipient");
            return 0;
        }
        else if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else {
            fprintf(stderr, "classify: unknown option %s\nusage: classify [--json] FILE...\n", argv[first]);
            return 2;
        }
    }
    if (first >= argc) {
        fputs("usage: classify [--json] FILE...\n", stderr);
        return 2;
    }
    struct bounce_limits lim = {0};
    for (int i = first; i < argc; i++) {
        size_t len = 0;
        char *data = ctl_classify_read(argv[i], BOUNCE_DEFAULT_MAX_SIZE, &len);
        if (data == NULL) {
            fprintf(stderr, "classify: %s: %s\n", argv[i], strerror(errno ? errno : EIO));
            rc = 1;
            continue;
        }
        bounce_report *r = NULL;
        char err[256] = "";
        int rv = bounce_analyse(data, len, &lim, &r, err, sizeof err);
        free(data);
        if (rv != BOUNCE_OK) {
            fprintf(stderr, "classify: %s: %s\n", argv[i], err[0] ? err : bounce_strerror(rv));
            rc = 1;
            continue;
        }
        const char *kind = bounce_kind_name(bounce_report_kind(r));
        size_t n = bounce_report_rcpt_count(r);
        for (size_t k = 0; k < n; k++) {
            const struct bounce_rcpt *x = bounce_report_rcpt(r, k);
            ctl_classify_print(argv[i], x->recipient, bounce_reason_name(x->reason), x->hard, x->smtp_code,
                               x->status, kind, bounce_report_feedback_type(r), x, json);
        }
        if (n == 0)
            ctl_classify_print(argv[i], "", "undefined", -1, 0, "", kind, "", NULL, json);
        bounce_report_free(r);
    }
    fflush(stdout);
    return rc;
}
