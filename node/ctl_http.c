/* ricochetctl's HTTP client (libcurl) and error reporting. One request per
 * call, on a fresh connection; the whole exchange is bounded by --timeout
 * and the reply body by CTL_MAX_REPLY. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "node/ctl.h"

struct growbuf {
    char *p;
    size_t n;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct growbuf *b = userdata;
    size_t len = size * nmemb;
    if (b->n + len > CTL_MAX_REPLY) {
        b->too_big = true;
        return 0;
    }
    char *np = realloc(b->p, b->n + len + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, ptr, len);
    b->p = np;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

void ctl_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ricochetctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* "Connection refused" -> "connection refused" */
static void lower_first(char *s)
{
    if (s[0] && isupper((unsigned char)s[0]) && !isupper((unsigned char)s[1]))
        s[0] = (char)tolower((unsigned char)s[0]);
}

int ctl_http_to(const struct ctl *c, const char *server, const char *method, const char *path, const json_t *body,
                json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    char url[1024];
    int ul = snprintf(url, sizeof url, "http://%s%s", server, path);
    if (ul < 0 || (size_t)ul >= sizeof url) {
        snprintf(err, errlen, "request path too long");
        return -1;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    struct growbuf b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (payload)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->timeout_s < 10 ? c->timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* a node is never behind $http_proxy */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ricochetctl");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
#endif
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    }
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK) {
        long oserr = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
        if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(err, errlen, "no answer within %ld s", c->timeout_s);
        else if (rc == CURLE_COULDNT_CONNECT && oserr != 0)
            snprintf(err, errlen, "%s", strerror((int)oserr));
        else if (b.too_big)
            snprintf(err, errlen, "the answer is larger than %u bytes", CTL_MAX_REPLY);
        else
            snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
        lower_first(err);
        status = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        json_error_t jerr;
        if (b.n) {
            *out = json_loadb(b.p, b.n, 0, &jerr);
            if (*out == NULL) {
                snprintf(err, errlen, "answered HTTP %ld with a body that is not JSON (is it a Ricochet node's API?)",
                         status);
                status = -1;
            }
        }
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(payload);
    free(b.p);
    return (int)status;
}

int ctl_request_to(const struct ctl *c, const char *server, const char *what, const char *method, const char *path,
                   json_t *body, json_t **reply, int *status_out, bool keep_error)
{
    char err[512];
    *reply = NULL;
    int status = ctl_http_to(c, server, method, path, body, reply, err, sizeof err);
    json_decref(body);
    if (status_out)
        *status_out = status;
    if (status < 0) {
        ctl_err("cannot reach %s: %s", server, err);
        return CTL_UNREACHABLE;
    }
    if (status >= 200 && status < 300) {
        if (*reply == NULL)
            *reply = json_object();
        return CTL_OK;
    }
    if (keep_error)
        return CTL_REFUSED;
    const char *msg = json_string_value(json_object_get(*reply, "error"));
    ctl_err("%s: %s (HTTP %d from %s)", what, msg ? msg : "request refused", status, server);
    if (c->json && *reply)
        ctl_print_json(*reply);
    json_decref(*reply);
    *reply = NULL;
    return CTL_REFUSED;
}

int ctl_request(const struct ctl *c, const char *what, const char *method, const char *path, json_t *body,
                json_t **reply)
{
    return ctl_request_to(c, c->server, what, method, path, body, reply, NULL, false);
}

int ctl_get_for_people(const struct ctl *c, const char *what, const char *path, json_t **reply)
{
    *reply = NULL;
    json_t *r;
    int rv = ctl_request(c, what, "GET", path, NULL, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
        json_decref(r);
        return CTL_OK;
    }
    *reply = r;
    return CTL_OK;
}

void ctl_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
    fflush(stdout);
}
