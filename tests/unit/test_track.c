/* Unit tests of open and click tracking (smtp/track.h): signed URLs, the
 * request field, and the recipient's copy of a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/track.h"

static const uint8_t secret[] = "0123456789abcdef-tracking";
static const struct track_key key = {.secret = secret, .secret_len = sizeof secret - 1,
                                     .base = "https://t.example.net"};
static const struct track_limits lim = {.max_html = 1 << 20, .max_links = 100};

static void test_urls_round_trip(void **state)
{
    (void)state;
    char url[TRACK_URL_MAX + 1];
    struct track_hit h;
    assert_int_equal(track_url(&key, TRACK_OPENS, "0193A1B2C3D0100AB", 2, NULL, url, sizeof url), TRACK_OK);
    assert_true(strncmp(url, "https://t.example.net/t/o/0193A1B2C3D0100AB/2/", 46) == 0);
    assert_int_equal(track_parse(&key, url + strlen(key.base), &h), TRACK_OK);
    assert_int_equal(h.event, TRACK_OPENS);
    assert_string_equal(h.id, "0193A1B2C3D0100AB");
    assert_int_equal(h.rcpt, 2);

    const char *target = "https://shop.example.com/a?b=1&c=%20x#frag";
    assert_int_equal(track_url(&key, TRACK_CLICKS, "0193A1B2C3D0100AB", 0, target, url, sizeof url), TRACK_OK);
    assert_int_equal(track_parse(&key, url + strlen(key.base), &h), TRACK_OK);
    assert_int_equal(h.event, TRACK_CLICKS);
    assert_int_equal(h.rcpt, 0);
    assert_string_equal(h.target, target);

    /* another key, another recipient, another target: refused */
    static const uint8_t other[] = "another-secret-of-16+";
    struct track_key k2 = {.secret = other, .secret_len = sizeof other - 1, .base = key.base};
    assert_int_equal(track_parse(&k2, url + strlen(key.base), &h), TRACK_EBADMAC);
    char forged[TRACK_URL_MAX + 1];
    snprintf(forged, sizeof forged, "%s", url + strlen(key.base));
    char *r = strstr(forged, "/0/");
    assert_non_null(r);
    r[1] = '1';
    assert_int_equal(track_parse(&key, forged, &h), TRACK_EBADMAC);
    char evil[TRACK_URL_MAX + 1];
    assert_int_equal(track_url(&key, TRACK_CLICKS, "0193A1B2C3D0100AB", 0, "https://evil.example/", evil,
                               sizeof evil), TRACK_OK);
    /* the signature of one target with another target's bytes */
    const char *mac_end = strrchr(url, '/'), *evil_tail = strrchr(evil, '/');
    snprintf(forged, sizeof forged, "%.*s%s", (int)(mac_end - url - strlen(key.base)), url + strlen(key.base),
             evil_tail);
    assert_int_equal(track_parse(&key, forged, &h), TRACK_EBADMAC);

    /* not ours: wrong shape, bad characters, non-canonical numbers */
    static const char *const bad[] = {
        "/t/", "/t/x/ID/0/AAAAAAAAAAAAAAAAAAAAAA.gif", "/t/o/ID/00/AAAAAAAAAAAAAAAAAAAAAA.gif",
        "/t/o/ID/4294967296/AAAAAAAAAAAAAAAAAAAAAA.gif", "/t/o/I%20D/0/AAAAAAAAAAAAAAAAAAAAAA.gif",
        "/t/o/ID/0/AAAAAAAAAAAAAAAAAAAAAA.png", "/t/o/ID/0/AAAA.gif", "/t/c/ID/0/AAAAAAAAAAAAAAAAAAAAAA",
        "/t/c/ID/0/AAAAAAAAAAAAAAAAAAAAAA/!!!!", "/t/c/ID/0/AAAAAAAAAAAAAAAAAAAAAA/amF2YXNjcmlwdDphbGVydCgxKQ",
        "/v1/cluster", "", NULL};
    for (const char *const *b = bad; *b; b++)
        assert_int_equal(track_parse(&key, *b, &h), TRACK_ENOTRACK);
    /* only http(s) targets, only ids of [A-Za-z0-9._-] */
    assert_int_equal(track_url(&key, TRACK_CLICKS, "ID", 0, "javascript:alert(1)", url, sizeof url), TRACK_EINVAL);
    assert_int_equal(track_url(&key, TRACK_CLICKS, "ID", 0, "https://a/\r\nX: y", url, sizeof url), TRACK_EINVAL);
    assert_int_equal(track_url(&key, TRACK_OPENS, "I/D", 0, NULL, url, sizeof url), TRACK_EINVAL);
    struct track_key weak = {.secret = secret, .secret_len = 8, .base = key.base};
    assert_int_equal(track_url(&weak, TRACK_OPENS, "ID", 0, NULL, url, sizeof url), TRACK_EINVAL);
}

static void test_wanted(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        unsigned want;
    } cases[] = {
        {"From: a@b\r\nX-Ricochet-Track: opens, clicks\r\nSubject: x\r\n\r\nbody", TRACK_OPENS | TRACK_CLICKS},
        {"x-ricochet-track: Opens\n\n", TRACK_OPENS},
        {"X-Ricochet-Track:\r\n clicks\r\n\r\n", TRACK_CLICKS},
        {"X-Ricochet-Track: all\r\n\r\n", TRACK_OPENS | TRACK_CLICKS},
        {"X-Ricochet-Track: none\r\n\r\n", 0},
        {"Subject: x\r\n\r\nX-Ricochet-Track: opens\r\n", 0}, /* in the body: not a field */
        {"X-Ricochet-Tracking: opens\r\n\r\n", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(track_wanted(cases[i].msg, strlen(cases[i].msg)), cases[i].want);
}

static const char mail[] =
    "Received: from client (client [192.0.2.9])\r\n\tby mx (Ricochet) with ESMTP id X\r\n"
    "From: news@shop.example.com\r\nTo: a@example.org\r\nSubject: Sale\r\nMIME-Version: 1.0\r\n"
    "X-Ricochet-Track: opens, clicks\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    "--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
    "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee https://shop.example.com/sale\r\n"
    "--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<html><body><p>Hi=20there</p><a href=3D\"https://shop.example.com/sale?a=3D1&amp;b=3D2\">Sale</a>\r\n"
    "<a href=3D'mailto:help@shop.example.com'>help</a> <a href=3D\"#top\">top</a>\r\n"
    "<A HREF=3Dhttp://shop.example.com/x>x</A><b><a href=3D\"https://b.example/\"><i>nested</b>y</a>\r\n"
    "</body></html>\r\n"
    "--alt--\r\n\r\n"
    "--outer\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n"
    "<a href=\"https://attached.example/\">kept</a>\r\n"
    "--outer--\r\n";

static void test_rewrite(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    struct track_result res;
    assert_int_equal(track_rewrite(&key, "MSG1", 3, TRACK_OPENS | TRACK_CLICKS, mail, strlen(mail), &lim, &out, &n,
                                   &res),
                     TRACK_OK);
    assert_non_null(out);
    assert_int_equal(strlen(out), n);
    assert_int_equal(res.html_parts, 1);
    assert_int_equal(res.links, 3);
    /* the request field is gone, the rest of the header block stays */
    assert_null(strstr(out, "X-Ricochet-Track"));
    assert_non_null(strstr(out, "Subject: Sale\r\n"));
    assert_non_null(strstr(out, "\r\n\tby mx (Ricochet) with ESMTP id X\r\n"));
    /* CRLF everywhere, no line over 998 octets */
    for (size_t i = 0, col = 0; i < n; i++, col++) {
        if (out[i] == '\n') {
            assert_true(i > 0 && out[i - 1] == '\r');
            col = 0;
        }
        assert_true(col <= 1000);
    }
    /* the plain part and the attached HTML are as they were */
    assert_non_null(strstr(out, "See https://shop.example.com/sale\r\n"));
    assert_non_null(strstr(out, "<a href=\"https://attached.example/\">kept</a>"));
    /* the URLs in the HTML part are ours (quoted-printable: unfold it) */
    char *flat = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '=' && i + 2 < n && out[i + 1] == '\r' && out[i + 2] == '\n') {
            i += 2;
            continue;
        }
        if (out[i] == '=' && i + 2 < n && strncmp(out + i + 1, "3D", 2) == 0) {
            flat[k++] = '=';
            i += 2;
            continue;
        }
        flat[k++] = out[i];
    }
    flat[k] = '\0';
    char url[TRACK_URL_MAX + 1];
    assert_int_equal(track_url(&key, TRACK_CLICKS, "MSG1", 3, "https://shop.example.com/sale?a=1&b=2", url,
                               sizeof url), TRACK_OK);
    assert_non_null(strstr(flat, url));
    assert_int_equal(track_url(&key, TRACK_CLICKS, "MSG1", 3, "http://shop.example.com/x", url, sizeof url),
                     TRACK_OK);
    assert_non_null(strstr(flat, url));
    assert_int_equal(track_url(&key, TRACK_CLICKS, "MSG1", 3, "https://b.example/", url, sizeof url), TRACK_OK);
    assert_non_null(strstr(flat, url));
    assert_non_null(strstr(flat, "'mailto:help@shop.example.com'"));
    assert_non_null(strstr(flat, "href=\"#top\""));
    assert_int_equal(track_url(&key, TRACK_OPENS, "MSG1", 3, NULL, url, sizeof url), TRACK_OK);
    const char *img = strstr(flat, url), *end = strstr(flat, "</body>");
    assert_non_null(img);
    assert_non_null(end);
    assert_true(img < end);
    assert_null(strstr(flat, "href=\"https://shop.example.com"));
    free(flat);
    free(out);

    /* nothing asked: the copy is the message without the field, byte for byte */
    assert_int_equal(track_rewrite(&key, "MSG1", 3, 0, mail, strlen(mail), &lim, &out, &n, &res), TRACK_OK);
    const char *field = strstr(mail, "X-Ricochet-Track: opens, clicks\r\n");
    size_t fl = strlen("X-Ricochet-Track: opens, clicks\r\n"), head = (size_t)(field - mail);
    assert_int_equal(n, strlen(mail) - fl);
    assert_memory_equal(out, mail, head);
    assert_memory_equal(out + head, field + fl, n - head);
    free(out);
    /* a header line that is no field: GMime would drop it, so no copy */
    const char *bad = "From: a@b\r\nX-Ricochet-Track: opens\r\nContent-Type: text/html;\r\ncharset=utf-8\r\n\r\n<p>x</p>\r\n";
    assert_int_equal(track_rewrite(&key, "M", 0, TRACK_OPENS, bad, strlen(bad), &lim, &out, &n, &res), TRACK_EPARSE);
    assert_null(out);
    /* opens only: links stay; a text-only message loses just the field */
    assert_int_equal(track_rewrite(&key, "MSG1", 0, TRACK_OPENS, mail, strlen(mail), &lim, &out, &n, &res), TRACK_OK);
    assert_int_equal(res.links, 0);
    assert_int_equal(res.html_parts, 1);
    free(out);
    const char *plain = "From: a@b\r\nX-Ricochet-Track: opens\r\nSubject: s\r\n\r\nhello\r\n";
    assert_int_equal(track_rewrite(&key, "M", 0, TRACK_OPENS, plain, strlen(plain), &lim, &out, &n, &res), TRACK_OK);
    assert_string_equal(out, "From: a@b\r\nSubject: s\r\n\r\nhello\r\n");
    free(out);
}

static void test_rewrite_limits_and_hostile(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    struct track_result res;
    /* a part over max_html is delivered as it is */
    struct track_limits small = {.max_html = 16, .max_links = 1};
    const char *html = "Content-Type: text/html\r\n\r\n<a href=\"https://a.example/\">a</a><a href=\"https://b/\">b</a>\r\n";
    assert_int_equal(track_rewrite(&key, "M", 0, 3, html, strlen(html), &small, &out, &n, &res), TRACK_OK);
    assert_int_equal(res.skipped, 1);
    assert_non_null(strstr(out, "href=\"https://a.example/\""));
    free(out);
    /* max_links: the first only */
    small.max_html = 1 << 20;
    assert_int_equal(track_rewrite(&key, "M", 0, TRACK_CLICKS, html, strlen(html), &small, &out, &n, &res), TRACK_OK);
    assert_int_equal(res.links, 1);
    assert_non_null(strstr(out, "=3D\"https://b/\"")); /* quoted-printable now */
    free(out);
    /* UTF-16 HTML is not rewritten byte-wise */
    const char *u16 = "Content-Type: text/html; charset=utf-16\r\n\r\n<\0a\0>\0";
    assert_int_equal(track_rewrite(&key, "M", 0, 3, u16, 50, &lim, &out, &n, &res), TRACK_OK);
    assert_int_equal(res.skipped, 1);
    free(out);
    /* deep nesting, an unclosed attribute, NUL bytes, no </body> */
    size_t big = 200000;
    char *deep = malloc(big + 64);
    size_t w = (size_t)sprintf(deep, "Content-Type: text/html\r\n\r\n");
    while (w + 8 < big) {
        memcpy(deep + w, "<div><a ", 8);
        w += 8;
    }
    memcpy(deep + w, "href=\"https://x", 15);
    w += 15;
    deep[100] = '\0';
    assert_int_equal(track_rewrite(&key, "M", 0, 3, deep, w, &lim, &out, &n, &res), TRACK_OK);
    free(out);
    free(deep);
    /* an empty HTML part gets the pixel */
    const char *empty = "Content-Type: text/html\r\n\r\n";
    assert_int_equal(track_rewrite(&key, "M", 0, 3, empty, strlen(empty), &lim, &out, &n, &res), TRACK_OK);
    assert_int_equal(res.html_parts, 1);
    assert_non_null(strstr(out, "/t/o/M/0/"));
    free(out);
    /* bad arguments */
    assert_int_equal(track_rewrite(&key, "bad id", 0, 3, html, strlen(html), &lim, &out, &n, &res), TRACK_EINVAL);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls_round_trip),
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_rewrite_limits_and_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
