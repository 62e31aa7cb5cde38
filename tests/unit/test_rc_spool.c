/* The segment spool (node/rc_spool.c): bodies read back and checked by
 * SHA-256, the index rebuilt after a restart, a torn tail cut off, segments
 * rotated and deleted once empty, bodies of the older one-file-per-message
 * layout still read, hostile ids refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/rc_spool.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/rc-spool-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void sha(const void *p, size_t n, uint8_t out[32])
{
    EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

static void body_of(int i, char *buf, size_t size)
{
    snprintf(buf, size, "Subject: message %d\r\n\r\n%0*d\r\n", i, 10 + i % 300, i);
}

static void assert_body(rc_spool *s, const char *id, const char *want)
{
    uint8_t h[32], *got = NULL;
    size_t len = 0;
    sha(want, strlen(want), h);
    assert_int_equal(rc_spool_get(s, id, h, &got, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

static size_t segments(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

static void test_put_get_reopen_rotate(void **state)
{
    (void)state;
    char err[256], id[32], body[512];
    rc_spool *s;
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    rc_spool_set_segment_max(s, 4096); /* many segments */
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "ID%05d", i);
        body_of(i, body, sizeof body);
        assert_int_equal(rc_spool_put(s, id, (const uint8_t *)body, strlen(body)), 0);
    }
    assert_true(segments() > 5);
    assert_int_equal(rc_spool_sync(s), 0);
    body_of(7, body, sizeof body);
    assert_body(s, "ID00007", body);
    uint8_t wrong[32] = {0}, *got;
    size_t len;
    assert_int_equal(rc_spool_get(s, "ID00007", wrong, &got, &len), -1); /* digest mismatch */
    assert_false(rc_spool_has(s, "ID99999"));
    /* written again (a replayed entry): the newest copy is read */
    assert_int_equal(rc_spool_put(s, "ID00003", (const uint8_t *)"new", 3), 0);
    assert_body(s, "ID00003", "new");
    rc_spool_close(s);

    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "ID%05d", i);
        assert_true(rc_spool_has(s, id));
        body_of(i, body, sizeof body);
        if (i != 3)
            assert_body(s, id, body);
    }
    assert_body(s, "ID00003", "new");
    /* appends continue after the restart */
    assert_int_equal(rc_spool_put(s, "AFTER", (const uint8_t *)"after restart", 13), 0);
    assert_body(s, "AFTER", "after restart");
    /* removing every body of the oldest segments deletes them */
    size_t before = segments();
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "ID%05d", i);
        assert_int_equal(rc_spool_remove(s, id), 0);
        assert_false(rc_spool_has(s, id));
    }
    assert_true(segments() < before);
    body_of(150, body, sizeof body);
    assert_body(s, "ID00150", body);
    rc_spool_close(s);
}

/* A crash in the middle of an append leaves a torn record: it is cut off at
 * the next start, every complete record stays, and appends go on. */
static void test_torn_tail(void **state)
{
    (void)state;
    char err[256];
    rc_spool *s;
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(rc_spool_put(s, "A1", (const uint8_t *)"first body", 10), 0);
    assert_int_equal(rc_spool_put(s, "A2", (const uint8_t *)"second body", 11), 0);
    rc_spool_close(s);
    char path[128];
    snprintf(path, sizeof path, "%s/seg-00000001", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 4), 0); /* torn A2 */
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    assert_true(rc_spool_has(s, "A1"));
    assert_false(rc_spool_has(s, "A2"));
    assert_body(s, "A1", "first body");
    assert_int_equal(rc_spool_put(s, "A2", (const uint8_t *)"second body", 11), 0);
    rc_spool_close(s);
    /* garbage after complete records (not a record header) is cut off too */
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage!garbage!garbage!", 24), 24);
    close(fd);
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    assert_body(s, "A1", "first body");
    assert_body(s, "A2", "second body");
    assert_int_equal(rc_spool_put(s, "A3", (const uint8_t *)"third", 5), 0);
    rc_spool_close(s);
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    assert_body(s, "A3", "third");
    assert_int_equal(stat(path, &st), 0);
    rc_spool_close(s);
}

static void test_legacy_and_hostile_ids(void **state)
{
    (void)state;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/OLDLAYOUT1", dir);
    FILE *f = fopen(path, "w");
    fputs("old body", f);
    fclose(f);
    rc_spool *s;
    assert_int_equal(rc_spool_open(&s, dir, err, sizeof err), 0);
    assert_true(rc_spool_has(s, "OLDLAYOUT1"));
    assert_body(s, "OLDLAYOUT1", "old body");
    assert_int_equal(rc_spool_put(s, "../escape", (const uint8_t *)"x", 1), -1);
    assert_int_equal(rc_spool_put(s, "", (const uint8_t *)"x", 1), -1);
    assert_false(rc_spool_has(s, "../OLDLAYOUT1"));
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(rc_spool_put(s, longid, (const uint8_t *)"x", 1), -1);
    rc_spool_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_reopen_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_and_hostile_ids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
