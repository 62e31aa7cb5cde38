/* `ricochetctl classify [--json] [-j N] FILE...`: offline bounce analysis
 * (DESIGN §7). One line per recipient: file, recipient, reason, hardbounce
 * (1, 0, or empty when the mail is not a bounce), smtp_code,
 * enhanced_status; tab-separated, or one JSON object per line with --json
 * (plus kind, feedback_type, original_recipient, action, remote_mta and
 * diagnostic). A mail that yields no recipient prints one line with an
 * empty recipient. Lines come in the order of the files.
 *
 * Files are analysed by -j worker threads (default: the online CPUs, at
 * most 8); their lines are printed in file order as they come.
 * Exit status: 0, 1 if some file could not be read or analysed, 2 on usage. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/ctl_classify.h"
#include "smtp/bounce.h"

#define CTL_CLASSIFY_MAX_JOBS 8
/* Largest file read: an mbox file may hold many mails, each of them at most
 * BOUNCE_DEFAULT_MAX_SIZE. */
#define CTL_CLASSIFY_MAX_FILE (256u << 20)

/* Whole file, at most max + 1 bytes (one more than allowed is enough to be
 * refused by bounce_analyse). NULL with errno set on failure. */
static char *ctl_classify_read(const char *path, size_t max, size_t *len)
{
    /* "-": the mail comes on standard input (a pipe, usually) */
    int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    size_t want = st.st_size > 0 ? (size_t)st.st_size : 65536;
    if (want > max + 1)
        want = max + 1;
    char *buf = malloc(want + 1);
    size_t n = 0;
    while (buf != NULL && n < want) {
        ssize_t got = read(fd, buf + n, want - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        if (n == want && st.st_size <= 0 && want <= max) { /* a pipe or a special file: grow */
            size_t nw = want * 2 > max + 1 ? max + 1 : want * 2;
            char *nb = realloc(buf, nw + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            want = nw;
        }
    }
    int e = errno;
    close(fd);
    if (buf == NULL)
        errno = e ? e : ENOMEM;
    *len = n;
    return buf;
}

/* A growing output buffer of one file's lines. */
struct ctl_out {
    char *s;
    size_t n, cap;
    int failed;
};

static void ctl_out_add(struct ctl_out *o, const char *s)
{
    size_t l = strlen(s);
    if (o->n + l + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + l + 1)
            cap *= 2;
        char *ns = realloc(o->s, cap);
        if (ns == NULL) {
            o->failed = 1;
            return;
        }
        o->s = ns;
        o->cap = cap;
    }
    memcpy(o->s + o->n, s, l + 1);
    o->n += l;
}

/* A non-negative number in decimal at out (room for 12 bytes): snprintf
 * would cost more than the rest of a TSV line. */
static void ctl_decimal(char out[static 12], int n)
{
    char rev[12];
    size_t k = 0;
    do {
        rev[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && k < sizeof rev);
    for (size_t i = 0; i < k; i++)
        out[i] = rev[k - 1 - i];
    out[k] = '\0';
}

static void ctl_classify_line(struct ctl_out *o, const char *file, size_t message, const char *rcpt,
                              const char *reason, int hard, int code, const char *status, const char *kind,
                              const char *ftype, const struct bounce_rcpt *x, int json)
{
    char hb[12] = "", sc[12] = "";
    if (hard >= 0)
        ctl_decimal(hb, hard);
    if (code > 0)
        ctl_decimal(sc, code);
    if (!json) {
        const char *f[6] = {file, rcpt, reason, hb, sc, status};
        for (int i = 0; i < 6; i++) {
            if (i > 0)
                ctl_out_add(o, "\t");
            ctl_out_add(o, f[i]);
        }
        ctl_out_add(o, "\n");
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "file", json_string(file));
    if (message > 0)
        json_object_set_new(j, "message", json_integer((json_int_t)message)); /* its number in an mbox file */
    json_object_set_new(j, "recipient", json_string(rcpt));
    json_object_set_new(j, "reason", json_string(reason));
    json_object_set_new(j, "hardbounce", hard >= 0 ? json_integer(hard) : json_null());
    json_object_set_new(j, "smtp_code", code > 0 ? json_integer(code) : json_null());
    json_object_set_new(j, "enhanced_status", json_string(status));
    json_object_set_new(j, "kind", json_string(kind));
    json_object_set_new(j, "feedback_type", json_string(ftype));
    if (x != NULL) {
        json_object_set_new(j, "original_recipient", json_string(x->original));
        json_object_set_new(j, "action", json_string(x->action));
        json_object_set_new(j, "remote_mta", json_string(x->remote_mta));
        json_object_set_new(j, "diagnostic", json_string(x->diagnostic));
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        ctl_out_add(o, s);
        ctl_out_add(o, "\n");
    } else {
        o->failed = 1;
    }
    free(s);
    json_decref(j);
}

/* One mail of a file (message: its number in an mbox file, or 0) into o;
 * an error goes to err, marked failed. */
static void ctl_classify_mail(const char *path, size_t message, const char *data, size_t len, int json,
                              struct ctl_out *o, struct ctl_out *err)
{
    bounce_report *r = NULL;
    char e[256] = "", msg[512], where[32] = "";
    int rv = bounce_analyse(data, len, NULL, &r, e, sizeof e);
    if (message > 0)
        snprintf(where, sizeof where, " (mail %zu)", message);
    if (rv != BOUNCE_OK) {
        snprintf(msg, sizeof msg, "classify: %s%s: %s\n", path, where, e[0] ? e : bounce_strerror(rv));
        ctl_out_add(err, msg);
        err->failed = 1;
        return;
    }
    const char *kind = bounce_kind_name(bounce_report_kind(r));
    size_t n = bounce_report_rcpt_count(r);
    for (size_t k = 0; k < n; k++) {
        const struct bounce_rcpt *x = bounce_report_rcpt(r, k);
        ctl_classify_line(o, path, message, x->recipient, bounce_reason_name(x->reason), x->hard, x->smtp_code,
                          x->status, kind, bounce_report_feedback_type(r), x, json);
    }
    if (n == 0)
        ctl_classify_line(o, path, message, "", "undefined", -1, 0, "", kind, "", NULL, json);
    bounce_report_free(r);
}

/* Analyses one file (one mail, or an mbox file of several, each read on its
 * own) into o; error text (if any) goes to err, marked failed, and is
 * printed on stderr by the caller. */
static void ctl_classify_file(const char *path, int json, struct ctl_out *o, struct ctl_out *err)
{
    size_t len = 0;
    char *data = ctl_classify_read(path, CTL_CLASSIFY_MAX_FILE, &len);
    char msg[512];
    if (data == NULL) {
        snprintf(msg, sizeof msg, "classify: %s: %s\n", path, strerror(errno ? errno : EIO));
        ctl_out_add(err, msg);
        err->failed = 1;
        return;
    }
    if (len > CTL_CLASSIFY_MAX_FILE) {
        snprintf(msg, sizeof msg, "classify: %s: larger than %u MiB\n", path, CTL_CLASSIFY_MAX_FILE >> 20);
        ctl_out_add(err, msg);
        err->failed = 1;
        free(data);
        return;
    }
    size_t *starts = NULL;
    size_t n = bounce_mbox_split(data, len, &starts);
    if (n == 0)
        ctl_classify_mail(path, 0, data, len, json, o, err);
    for (size_t i = 0; i < n; i++) {
        size_t end = i + 1 < n ? starts[i + 1] : len;
        ctl_classify_mail(path, i + 1, data + starts[i], end - starts[i], json, o, err);
    }
    free(starts);
    free(data);
}

/* Workers take files in order and leave each file's lines in a slot of a
 * ring; whoever fills the slot that is next to print prints it and every
 * filled slot after it (one printer at a time, the others go on
 * analysing). No worker runs further ahead of the printing than the ring
 * holds, so memory stays bounded however many files there are, and no
 * CPU waits for a batch to end or wakes a printing thread per file. */
#define CTL_CLASSIFY_RING 1024

struct ctl_slot {
    struct ctl_out out, err;
    int done;
};

struct ctl_pipe {
    char **files;
    size_t n, taken, printed;
    int json, printing, failed;
    struct ctl_slot *ring;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

/* Called with the lock held; prints the filled slots from the next one on. */
static void ctl_classify_print(struct ctl_pipe *p)
{
    p->printing = 1;
    for (;;) {
        struct ctl_slot *s = &p->ring[p->printed % CTL_CLASSIFY_RING];
        if (p->printed >= p->n || !s->done)
            break;
        pthread_mutex_unlock(&p->lock);
        if (s->out.n)
            fwrite(s->out.s, 1, s->out.n, stdout);
        if (s->err.n)
            fwrite(s->err.s, 1, s->err.n, stderr);
        int failed = s->err.failed || s->out.failed;
        free(s->out.s);
        free(s->err.s);
        memset(s, 0, sizeof *s);
        pthread_mutex_lock(&p->lock);
        p->failed |= failed;
        p->printed++;
        pthread_cond_broadcast(&p->freed);
    }
    p->printing = 0;
}

static void *ctl_classify_worker(void *arg)
{
    struct ctl_pipe *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->taken < p->n && p->taken >= p->printed + CTL_CLASSIFY_RING)
            pthread_cond_wait(&p->freed, &p->lock);
        if (p->taken >= p->n)
            break;
        size_t i = p->taken++;
        struct ctl_slot *s = &p->ring[i % CTL_CLASSIFY_RING];
        pthread_mutex_unlock(&p->lock);
        ctl_classify_file(p->files[i], p->json, &s->out, &s->err);
        pthread_mutex_lock(&p->lock);
        s->done = 1;
        if (!p->printing)
            ctl_classify_print(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int ctl_classify_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CTL_CLASSIFY_MAX_JOBS ? CTL_CLASSIFY_MAX_JOBS : (int)n;
}

static const char ctl_classify_usage[] = "usage: classify [--json] [-j N] FILE... (-: standard input)\n";

int ctl_classify_main(int argc, char **argv)
{
    int json = 0, first = 1, rc = 0, jobs = ctl_classify_jobs();
    for (; first < argc && argv[first][0] == '-' && argv[first][1] != '\0'; first++) {
        if (strcmp(argv[first], "--json") == 0) {
            json = 1;
        } else if ((strcmp(argv[first], "-j") == 0 || strcmp(argv[first], "--jobs") == 0) && first + 1 < argc) {
            char *end;
            long v = strtol(argv[++first], &end, 10);
            if (*end != '\0' || v < 1 || v > CTL_CLASSIFY_MAX_JOBS) {
                fprintf(stderr, "classify: -j takes 1..%d\n", CTL_CLASSIFY_MAX_JOBS);
                return 2;
            }
            jobs = (int)v;
        } else if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
            fputs(ctl_classify_usage, stdout);
            puts("prints file, recipient, reason, hardbounce, smtp_code, enhanced_status per recipient");
            return 0;
        } else if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else {
            fprintf(stderr, "classify: unknown option %s\n%s", argv[first], ctl_classify_usage);
            return 2;
        }
    }
    if (first >= argc) {
        fputs(ctl_classify_usage, stderr);
        return 2;
    }
    struct ctl_pipe p = {.files = argv + first, .n = (size_t)(argc - first), .json = json};
    p.ring = calloc(CTL_CLASSIFY_RING, sizeof *p.ring);
    if (p.ring == NULL) {
        perror("classify");
        return 1;
    }
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.freed, NULL);
    pthread_t th[CTL_CLASSIFY_MAX_JOBS];
    int started = 0;
    for (int k = 1; k < jobs && (size_t)k < p.n; k++)
        if (pthread_create(&th[started], NULL, ctl_classify_worker, &p) == 0)
            started++;
    ctl_classify_worker(&p);
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    rc = p.failed;
    pthread_cond_destroy(&p.freed);
    pthread_mutex_destroy(&p.lock);
    free(p.ring);
    fflush(stdout);
    return rc;
}
