#include "smtp/smtp_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USERS 10000

struct user {
    char name[128];
    unsigned iterations;
    unsigned char salt[64], hash[32];
    int salt_len;
};

struct smtp_users {
    struct user *users;
    size_t n;
};

int smtp_b64_decode(const char *in, unsigned char *out, size_t outlen)
{
    size_t n = strlen(in);
    if (n % 4 != 0 || n / 4 * 3 > outlen || n > INT_MAX)
        return -1;
    if (n == 0)
        return 0;
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    if (n >= 1 && in[n - 1] == '=')
        len--;
    if (n >= 2 && in[n - 2] == '=')
        len--;
    return len;
}

smtp_users *smtp_users_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    smtp_users *u = calloc(1, sizeof *u);
    char line[1024];
    int lineno = 0;
    size_t cap = 0;
    while (u && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *fields[5];
        int nf = 0;
        for (char *save = NULL, *t = strtok_r(line, ":", &save); t && nf < 5; t = strtok_r(NULL, ":", &save))
            fields[nf++] = t;
        struct user x;
        memset(&x, 0, sizeof x);
        unsigned char hash[48];
        if (nf != 5 || strcmp(fields[1], "pbkdf2-sha256") != 0 || strlen(fields[0]) >= sizeof x.name ||
            (x.iterations = (unsigned)strtoul(fields[2], NULL, 10)) < 1000 || x.iterations > 10000000 ||
            (x.salt_len = smtp_b64_decode(fields[3], x.salt, sizeof x.salt)) < 8 ||
            smtp_b64_decode(fields[4], hash, sizeof hash) != 32) {
            snprintf(err, errlen, "%s: line %d: expected NAME:pbkdf2-sha256:ITERATIONS(1000..10000000):SALT_B64:HASH_B64", path, lineno);
            goto fail;
        }
        snprintf(x.name, sizeof x.name, "%s", fields[0]);
        memcpy(x.hash, hash, 32);
        if (u->n == MAX_USERS) {
            snprintf(err, errlen, "%s: more than %d users", path, MAX_USERS);
            goto fail;
        }
        if (u->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct user *nu = realloc(u->users, cap * sizeof *nu);
            if (nu == NULL)
                goto fail;
            u->users = nu;
        }
        u->users[u->n++] = x;
    }
    fclose(f);
    return u;
fail:
    fclose(f);
    smtp_users_free(u);
    return NULL;
}

void smtp_users_free(smtp_users *u)
{
    if (u == NULL)
        return;
    OPENSSL_cleanse(u->users, u->n * sizeof *u->users);
    free(u->users);
    free(u);
}

bool smtp_users_check(const smtp_users *u, const char *user, const char *password)
{
    static const struct user dummy = {.name = "", .iterations = SMTP_AUTH_DEFAULT_ITERATIONS, .salt_len = 16};
    const struct user *x = &dummy;
    bool known = false;
    for (size_t i = 0; u && i < u->n; i++)
        if (strcmp(u->users[i].name, user) == 0) {
            x = &u->users[i];
            known = true;
        }
    unsigned char got[32];
    if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), x->salt, x->salt_len, (int)x->iterations,
                           EVP_sha256(), sizeof got, got))
        return false;
    return CRYPTO_memcmp(got, x->hash, 32) == 0 && known;
}

int smtp_users_hash_line(const char *name, const char *password, unsigned iterations, char *out, size_t outlen)
{
    unsigned char salt[16], hash[32];
    char salt_b64[32], hash_b64[48];
    if (strchr(name, ':') || !*name || RAND_bytes(salt, sizeof salt) != 1 ||
        !PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof salt, (int)iterations, EVP_sha256(),
                           sizeof hash, hash))
        return -1;
    EVP_EncodeBlock((unsigned char *)salt_b64, salt, sizeof salt);
    EVP_EncodeBlock((unsigned char *)hash_b64, hash, sizeof hash);
    int n = snprintf(out, outlen, "%s:pbkdf2-sha256:%u:%s:%s", name, iterations, salt_b64, hash_b64);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
