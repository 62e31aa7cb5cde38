/* Small bounded string helpers of the bounce library. */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

void bounce__copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
}

char *bounce__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

const unsigned char bounce__fold[256] = {
#define L4(i) (i), (i) + 1, (i) + 2, (i) + 3
#define L16(i) L4(i), L4((i) + 4), L4((i) + 8), L4((i) + 12)
    L16(0), L16(16), L16(32), L16(48),
    0x40, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
    L16(96), L16(112), L16(128), L16(144), L16(160), L16(176), L16(192), L16(208), L16(224), L16(240),
#undef L16
#undef L4
};

static bool bounce_eq_ci(const unsigned char *h, const unsigned char *n, size_t nl)
{
    for (size_t k = 0; k < nl; k++)
        if (bounce__fold[h[k]] != bounce__fold[n[k]])
            return false;
    return true;
}

#ifdef __SSE2__
/* The candidates among the 16 start positions p[0..15]: bit k when p[k]
 * and p[k + d] (d: the needle's length - 1), each ORed with fold, equal
 * first and last. */
static inline unsigned bounce_cand16(const unsigned char *p, size_t d, __m128i fold, __m128i first, __m128i last)
{
    __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)p), fold);
    __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(p + d)), fold);
    return (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last)));
}
#endif

/* The needle (nl >= 1 bytes) at start position at of h, whose first byte
 * is known to equal the needle's (without case with ci). */
static inline bool bounce_match_at(const unsigned char *h, size_t at, const unsigned char *n, size_t nl, bool ci)
{
    if (ci)
        return bounce_eq_ci(h + at, n, nl);
    /* the first byte is equal already */
    return nl < 2 || (h[at + nl - 1] == n[nl - 1] && memcmp(h + at + 1, n + 1, nl - 2) == 0);
}

/* The search of bounce__memmem (ci false) and bounce__memistr (ci true,
 * ASCII letters' case ignored); nl >= 1, nl <= len. With SSE2, 16 or 32
 * start positions are tested at a time on the needle's first and last
 * bytes (with ci, each folded by OR 0x20: two bytes equal without case are
 * equal after it; the fold only adds candidates, which the full comparison
 * drops), and the last positions as one block that overlaps the ones
 * already tested: no byte-wise tail, no call to glibc's memmem, whose
 * set-up alone cost some 250 instructions. Inlined into both callers, so
 * that ci is a constant there. */
static inline __attribute__((always_inline)) const char *bounce_search(const char *hay, size_t len, const char *needle,
                                                                       size_t nl, bool ci)
{
    const unsigned char *h = (const unsigned char *)hay, *n = (const unsigned char *)needle;
    size_t np = len - nl + 1; /* start positions */
    size_t i = 0;
#ifdef __SSE2__
    if (np >= 16) {
        /* a block at i reads h[i, i + 16) and h[i + nl - 1, i + nl + 15): i + 16 <= np */
        const unsigned char f = ci ? 0x20 : 0;
        const __m128i fold = _mm_set1_epi8((char)f);
        const __m128i first = _mm_set1_epi8((char)(n[0] | f)), last = _mm_set1_epi8((char)(n[nl - 1] | f));
        for (; i + 32 <= np; i += 32) {
            uint32_t m = bounce_cand16(h + i, nl - 1, fold, first, last) |
                         (uint32_t)bounce_cand16(h + i + 16, nl - 1, fold, first, last) << 16;
            for (; m != 0; m &= m - 1) {
                size_t at = i + (unsigned)__builtin_ctz(m);
                if (bounce_match_at(h, at, n, nl, ci))
                    return hay + at;
            }
        }
        while (i < np) {
            size_t b = i + 16 <= np ? i : np - 16;
            unsigned m = bounce_cand16(h + b, nl - 1, fold, first, last) & (~0u << (i - b));
            for (; m != 0; m &= m - 1) {
                size_t at = b + (unsigned)__builtin_ctz(m);
                if (bounce_match_at(h, at, n, nl, ci))
                    return hay + at;
            }
            i = b + 16;
        }
        return NULL;
    }
#endif
    const unsigned char c0 = ci ? bounce__fold[n[0]] : n[0];
    for (; i < np; i++)
        if ((ci ? bounce__fold[h[i]] : h[i]) == c0 && bounce_match_at(h, i, n, nl, ci))
            return hay + i;
    return NULL;
}

/* memmem(): glibc's costs some 1.5 instructions per byte on the long texts
 * the analyser scans (every report's body for its relabelling). */
const char *bounce__memmem(const char *hay, size_t len, const char *needle, size_t nl)
{
    if (nl == 0)
        return hay;
    if (len < nl)
        return NULL;
    return bounce_search(hay, len, needle, nl, false);
}

/* Case-insensitive search (ASCII letters), the analyser's most frequent
 * question. */
const char *bounce__memistr(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return hay;
    if (len < nl)
        return NULL;
    return bounce_search(hay, len, needle, nl, true);
}

const char *bounce__stristr(const char *hay, const char *needle)
{
    return bounce__memistr(hay, strlen(hay), needle);
}

/* strncasecmp(s, prefix, strlen(prefix)) == 0 of the C locale: most
 * prefixes asked for differ at the first byte, where this loop has stopped
 * before the library calls' set-up would be done. s's NUL differs from any
 * byte of the prefix, so s is not read past it. */
bool bounce__starts_ci(const char *s, const char *prefix)
{
    const unsigned char *a = (const unsigned char *)s, *b = (const unsigned char *)prefix;
    for (; *b; a++, b++)
        if (bounce__fold[*a] != bounce__fold[*b])
            return false;
    return true;
}

/* The digit '0'..'9' (glibc's isdigit() in every locale, without its
 * table lookup). */
static inline bool bounce_digit(char c)
{
    return (unsigned char)(c - '0') <= 9;
}

/* The first digit of t[i, len), or len: codes are all the searches below
 * look for, and most of a text is none (SSE2: 16 bytes per test). */
static size_t bounce_next_digit(const char *t, size_t i, size_t len)
{
#ifdef __SSE2__
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9), none = _mm_setzero_si128();
    for (; i + 16 <= len; i += 16) {
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(t + i)), zero);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_subs_epu8(v, nine), none));
        if (m != 0)
            return i + (unsigned)__builtin_ctz(m);
    }
#endif
    while (i < len && (unsigned char)(t[i] - '0') > 9)
        i++;
    return i;
}

/* The next run of digits of s[*i, len) (s has a NUL at len): *at its
 * first digit, *i past it; false when there is none. Only a run's first
 * digit can start a code or a status (neither has a digit before it), and
 * digits are few: texts are walked from run to run (byte by byte this was
 * most of a reply's search). */
static bool bounce_digit_run(const char *s, size_t len, size_t *i, const char **at)
{
    size_t k = bounce_next_digit(s, *i, len);
    if (k >= len)
        return false;
    size_t e = k + 1;
    while (bounce_digit(s[e]))
        e++;
    *at = s + k;
    *i = e;
    return true;
}

int bounce__find_code(const char *s, const char **where)
{
    size_t len = strlen(s), i = 0;
    for (const char *p; bounce_digit_run(s, len, &i, &p);) {
        if (s + i - p != 3 || p[0] < '2' || p[0] > '5')
            continue;
        if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '-' || p[-1] == '#' ||
                      p[-1] == '/' || p[-1] == ':' || p[-1] == '+'))
            continue;
        char c = p[3];
        if (c != ' ' && c != '-' && c != '\0' && c != '\n' && c != '\r' && c != '\t' && c != ']' &&
            c != ',' && c != ')' && c != '"' && c != ';')
            continue;
        /* "550-5.1.1" or "550 5.1.1" or "550 text"; skip things like "500 ms" or years */
        int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (p[1] > '5')
            continue;
        if (where)
            *where = p;
        return code;
    }
    return 0;
}

bool bounce__find_status(const char *s, char *out, size_t outlen)
{
    size_t len = strlen(s), i = 0;
    for (const char *p; bounce_digit_run(s, len, &i, &p);) {
        if ((p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
            continue;
        if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.'))
            continue;
        const char *q = p + 2;
        size_t d1 = 0, d2 = 0;
        while (isdigit((unsigned char)q[d1]) && d1 < 4)
            d1++;
        if (d1 == 0 || d1 > 3 || q[d1] != '.')
            continue;
        const char *r = q + d1 + 1;
        while (isdigit((unsigned char)r[d2]) && d2 < 4)
            d2++;
        if (d2 == 0 || d2 > 3)
            continue;
        if (isalnum((unsigned char)r[d2]) || (r[d2] == '.' && isdigit((unsigned char)r[d2 + 1])))
            continue;
        size_t n = (size_t)(r + d2 - p);
        if (n + 1 > outlen)
            return false;
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL || c >= 0x80 of
 * the C locale, as a table (strchr() per byte of an address was most of
 * its cleaning; its NUL is in the set as strchr() finds it) */
static const bool bounce_addr_chars[128] = {
    [0] = true, ['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
    ['*'] = true, ['+'] = true, ['-'] = true, ['/'] = true, ['='] = true, ['?'] = true, ['^'] = true,
    ['_'] = true, ['`'] = true, ['{'] = true, ['|'] = true, ['}'] = true, ['~'] = true, ['.'] = true,
    ['@'] = true,
    ['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true, ['6'] = true,
    ['7'] = true, ['8'] = true, ['9'] = true,
    ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true, ['G'] = true,
    ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true, ['M'] = true, ['N'] = true,
    ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true, ['S'] = true, ['T'] = true, ['U'] = true,
    ['V'] = true, ['W'] = true, ['X'] = true, ['Y'] = true, ['Z'] = true,
    ['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true, ['e'] = true, ['f'] = true, ['g'] = true,
    ['h'] = true, ['i'] = true, ['j'] = true, ['k'] = true, ['l'] = true, ['m'] = true, ['n'] = true,
    ['o'] = true, ['p'] = true, ['q'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['u'] = true,
    ['v'] = true, ['w'] = true, ['x'] = true, ['y'] = true, ['z'] = true,
};

static bool bounce_addr_char(int c)
{
    return c >= 0x80 || bounce_addr_chars[c];
}

char *bounce__clean_addr(const char *s, size_t n)
{
    const char *end = s + n;
    /* "rfc822; addr" */
    const char *semi = memchr(s, ';', n);
    if (semi != NULL)
        s = semi + 1;
    const char *at = memchr(s, '@', (size_t)(end - s));
    if (at == NULL)
        return NULL;
    const char *b = at, *e = at + 1;
    while (b > s && bounce_addr_char((unsigned char)b[-1]))
        b--;
    while (e < end && bounce_addr_char((unsigned char)*e))
        e++;
    while (e > at + 1 && (e[-1] == '.' || e[-1] == '\''))
        e--;
    while (b < at && (*b == '.' || *b == '\''))
        b++;
    if (b == at || e == at + 1 || (size_t)(e - b) > 254)
        return NULL;
    /* the domain needs a dot or to be a plain host name of letters */
    char *out = bounce__strndup(b, (size_t)(e - b));
    if (out == NULL)
        return NULL;
    char *d = strchr(out, '@');
    if (strchr(d + 1, '@') != NULL) {
        free(out);
        return NULL;
    }
    for (char *p = d + 1; *p; p++)
        *p = (char)bounce__fold[(unsigned char)*p];
    return out;
}

/* isspace() of the C locale, the analyser's (it never calls setlocale()). */
static bool bounce_is_space(unsigned char c)
{
    return c == ' ' || (unsigned char)(c - '\t') <= '\r' - '\t';
}

#ifdef __SSE2__
/* v with its ASCII capitals made small. */
static __m128i bounce_lower16(__m128i v)
{
    __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('A'));
    __m128i cap = _mm_cmpeq_epi8(_mm_subs_epu8(t, _mm_set1_epi8('Z' - 'A')), _mm_setzero_si128());
    return _mm_add_epi8(v, _mm_and_si128(cap, _mm_set1_epi8(0x20)));
}
#endif

/* One byte c of bounce__normalise(s) written at w (a white one only makes
 * a blank pending, *sp); returns where the next goes. */
static inline char *bounce_norm_byte(const char *s, char *w, bool *sp, unsigned char c)
{
    if (bounce_is_space(c)) {
        *sp = true;
        return w;
    }
    if (*sp && w != s)
        *w++ = ' ';
    *sp = false;
    *w++ = (char)bounce__fold[c];
    return w;
}

/* Mostly running text: with SSE2, 16 bytes none of whose white space
 * (blanks, line breaks, tabs) is next to more are written at once, lower-
 * cased and each white space byte made a blank, other ones byte by byte
 * (tolower() and isspace() per byte were 1 % of a report's instructions;
 * lines' breaks sent most blocks of a context that way). */
void bounce__normalise(char *s)
{
    char *w = s, *r = s;
    bool sp = false;
#ifdef __SSE2__
    size_t n = strlen(s);
    const char *end16 = s + (n & ~(size_t)15);
    const __m128i blank = _mm_set1_epi8(' ');
    while (r < end16) {
        __m128i v = _mm_loadu_si128((const __m128i *)r);
        __m128i ctl = _mm_subs_epu8(_mm_sub_epi8(v, _mm_set1_epi8('\t')), _mm_set1_epi8('\r' - '\t'));
        __m128i ws = _mm_or_si128(_mm_cmpeq_epi8(v, blank), _mm_cmpeq_epi8(ctl, _mm_setzero_si128()));
        unsigned m = (unsigned)_mm_movemask_epi8(ws);
        if ((m & (m >> 1)) == 0 && ((m & 1u) == 0 || w != s)) {
            /* what the byte loop would write: a pending blank (unless the
             * first byte is white, which gives it), then the 16 bytes, of
             * which a white last one only becomes pending (w + 1 <= r when
             * a blank is pending: no overlap) */
            if (sp && w != s && (m & 1u) == 0)
                *w++ = ' ';
            _mm_storeu_si128((__m128i *)w, _mm_or_si128(_mm_andnot_si128(ws, bounce_lower16(v)), _mm_and_si128(ws, blank)));
            sp = (m & 0x8000u) != 0;
            w += sp ? 15 : 16;
            r += 16;
            continue;
        }
        for (const char *e = r + 16; r < e; r++)
            w = bounce_norm_byte(s, w, &sp, (unsigned char)*r);
    }
#endif
    for (; *r; r++)
        w = bounce_norm_byte(s, w, &sp, (unsigned char)*r);
    *w = '\0';
}

/* ---- status codes, reply codes, commands in free text ---------------------- */

static bool bounce_is_ipv4_at(const char *s, size_t *len)
{
    size_t i = 0;
    for (int oct = 0; oct < 4; oct++) {
        size_t d = 0;
        while (isdigit((unsigned char)s[i + d]) && d < 4)
            d++;
        if (d == 0 || d > 3)
            return false;
        i += d;
        if (oct < 3) {
            if (s[i] != '.')
                return false;
            i++;
        }
    }
    if (isdigit((unsigned char)s[i]))
        return false;
    *len = i;
    return true;
}

/* Enhanced status at s[i] (class digit), or 0; *n its length. */
static size_t bounce_status_at(const char *s, size_t i, size_t *n)
{
    char p = i > 0 ? s[i - 1] : ' ';
    if ((p >= '.' && p <= '9') || p == 'v' || p == 'V')
        return 0;
    if (s[i + 1] != '.' || s[i + 2] < '0' || s[i + 2] > '7' || s[i + 3] != '.' || !isdigit((unsigned char)s[i + 4]))
        return 0;
    size_t k = 5;
    while (k < 7 && isdigit((unsigned char)s[i + k]))
        k++;
    if (k == 7 && isdigit((unsigned char)s[i + k]))
        return 0;
    *n = k;
    return 1;
}

/* cv := the more telling of cv and code (both 16 bytes). */
static void bounce_status_keep(char cv[16], const char *code)
{
    if (cv[0] == '\0') {
        bounce__copy(cv, 16, code);
    } else {
        char pref[16];
        bounce__status_prefer(pref, sizeof pref, cv, code, 0);
        bounce__copy(cv, 16, pref);
    }
}

/* One pass over the digit runs of text (len bytes, a NUL at len) for the
 * status bounce__status_find() answers (with cv, 16 bytes; len >= 7) and
 * the codes bounce__reply_find() reads (with set). Only the first digit of
 * a run can start a status, an IPv4 address or a reply code standing
 * alone (each wants no digit before it): the rest of a run is skipped.
 * What an address or a status spans holds no reply code either (each of
 * their runs but the first touches a '.'). The classifier asks both of
 * each diagnostic, and a pass per digit for each was half of its
 * cleaning's cost. */
static void bounce_codes_scan(const char *text, size_t len, char cv[16], uint64_t set[16])
{
    char other[16] = "", ok[16] = "";
    if (set != NULL)
        memset(set, 0, 16 * sizeof set[0]);
    for (size_t i = 0; i < len; i++) {
        i = bounce_next_digit(text, i, len);
        if (i >= len)
            break;
        /* i starts a run: the byte before it, if any, is no digit */
        size_t e = i + 1;
        while (e < len && bounce_digit(text[e]))
            e++;
        if (set != NULL && e - i == 3) {
            char b = i > 0 ? text[i - 1] : ' ';
            char a = e < len ? text[e] : ' ';
            if (!(b >= '.' && b <= '9') && !(a >= '.' && a <= '9')) {
                unsigned code = (unsigned)(text[i] - '0') * 100 + (unsigned)(text[i + 1] - '0') * 10 +
                                (unsigned)(text[i + 2] - '0');
                set[code >> 6] |= 1ull << (code & 63);
            }
        }
        size_t ipl, n;
        if (cv == NULL) {
            i = e - 1;
        } else if (bounce_is_ipv4_at(text + i, &ipl)) {
            i += ipl - 1; /* an IPv4 address is no status code */
        } else if ((text[i] != '2' && text[i] != '4' && text[i] != '5') || !bounce_status_at(text, i, &n)) {
            i = e - 1;
        } else {
            char code[16];
            memcpy(code, text + i, n);
            code[n] = '\0';
            i += n - 1;
            /* a transcript's "250 2.1.5 Ok" before the refusal: a success
             * status is the answer only when the text has no other */
            if (code[0] == '2') {
                if (ok[0] == '\0')
                    bounce__copy(ok, sizeof ok, code);
            } else if (strncmp(code + 1, ".0.0", 4) == 0 || strcmp(code, "4.4.7") == 0) {
                /* x.0.0 and 4.4.7 say little: used only when nothing better is there */
                bounce__copy(other, sizeof other, code);
            } else {
                bounce_status_keep(cv, code);
            }
        }
    }
    if (cv == NULL)
        return;
    if (other[0])
        bounce_status_keep(cv, other);
    if (cv[0] == '\0')
        bounce__copy(cv, 16, ok);
}

bool bounce__status_find(const char *text, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t len = text != NULL ? strlen(text) : 0;
    if (len < 7 || outlen < 8)
        return false;
    char cv[16] = "";
    bounce_codes_scan(text, len, cv, NULL);
    bounce__copy(out, outlen, cv);
    return cv[0] != '\0';
}

/* Of the status in the Status: field (a), the one in the diagnostic (b) and
 * the reply code's class, the more telling one. */
void bounce__status_prefer(char *out, size_t outlen, const char *a, const char *b, int reply)
{
    const char *r = a;
    if (a[0] == '\0')
        r = b;
    else if (b[0] == '\0' || strlen(b) < 5)
        r = a;
    else if (strlen(a) < 5)
        r = b;
    else {
        char rc = reply > 0 ? (char)('0' + reply / 100) : '0';
        bool z2a = strstr(a, ".0.0") != NULL, z2b = strstr(b, ".0.0") != NULL;
        bool z1a = strstr(a, ".0") != NULL, z1b = strstr(b, ".0") != NULL;
        if (reply > 0 && a[0] != b[0] && (rc == a[0] || rc == b[0]))
            r = rc == a[0] ? a : b;
        else if (strcmp(a, b) == 0)
            r = a;
        else if (z2a)
            r = z2b ? a : b;
        else if (z1a && !z1b)
            r = b;
        else if (z2b)
            r = a;
        else if (strcmp(a, "4.4.7") == 0 || strcmp(a, "4.7.0") == 0 || strncmp(a, "5.3.", 4) == 0 ||
                 strncmp(a + 1, ".5.1", 4) == 0 || strncmp(a + 1, ".5.2", 4) == 0 ||
                 strncmp(a + 1, ".5.4", 4) == 0 || strncmp(a + 1, ".5.5", 4) == 0)
            r = b;
        else if (strcmp(a, "5.1.1") == 0)
            r = (z1b || strncmp(b, "5.5.", 4) == 0) ? a : b;
        else if (strcmp(a, "5.1.3") == 0 && strncmp(b, "5.7.", 4) == 0)
            r = b;
        else
            r = a;
    }
    bounce__copy(out, outlen, r);
}

static const int bounce_reply2[] = {211, 214, 220, 221, 235, 250, 251, 252, 253, 354, 0};
static const int bounce_reply4[] = {421, 450, 451, 452, 422, 430, 432, 453, 454, 455, 456, 458, 459, 0};
static const int bounce_reply5[] = {550, 552, 553, 551, 521, 525, 502, 520, 523, 524, 530, 533, 534,
                                    535, 538, 555, 556, 554, 557, 500, 501, 503, 504, 0};

/* The first code of class cls (0: any) that set holds, by the tables'
 * order. */
static int bounce_reply_pick(const uint64_t set[16], char cls)
{
    const int *const lists[3] = {bounce_reply5, bounce_reply4, bounce_reply2};
    for (int l = 0; l < 3; l++) {
        if ((cls == '5' && l != 0) || (cls == '4' && l != 1) || (cls == '2' && l != 2))
            continue;
        for (const int *c = lists[l]; *c; c++)
            if ((set[*c >> 6] >> (*c & 63)) & 1)
                return *c;
    }
    return 0;
}

int bounce__reply_find(const char *text, char cls)
{
    size_t len = text ? strlen(text) : 0;
    if (len < 3 || bounce__memistr(text, len, "x-unix"))
        return 0;
    uint64_t set[16];
    bounce_codes_scan(text, len, NULL, set);
    return bounce_reply_pick(set, cls);
}

/* The SMTP command a text names; the one furthest into the dialogue wins.
 * Each command counts at its first occurrence only (a word of its own
 * unless it has a blank). One pass over the text: only capital letters
 * can start a command, and SSE2 finds them 16 bytes at a time (a strstr()
 * per command was 1 % of a report's instructions). */
static const struct {
    const char *w;
    size_t n;
    enum bounce_smtp_cmd c;
} bounce_cmds[] = {
    {BOUNCE_LIT("HELO"), BOUNCE_CMD_HELO}, {BOUNCE_LIT("EHLO"), BOUNCE_CMD_HELO}, {BOUNCE_LIT("STARTTLS"), BOUNCE_CMD_STARTTLS},
    {BOUNCE_LIT("AUTH PLAIN"), BOUNCE_CMD_AUTH}, {BOUNCE_LIT("AUTH LOGIN"), BOUNCE_CMD_AUTH}, {BOUNCE_LIT("AUTH CRAM-"), BOUNCE_CMD_AUTH},
    {BOUNCE_LIT("AUTH DIGEST-"), BOUNCE_CMD_AUTH}, {BOUNCE_LIT("MAIL F"), BOUNCE_CMD_MAIL}, {BOUNCE_LIT("RCPT"), BOUNCE_CMD_RCPT},
    {BOUNCE_LIT("DATA"), BOUNCE_CMD_DATA}, {BOUNCE_LIT("QUIT"), BOUNCE_CMD_OTHER}, {BOUNCE_LIT("XFORWARD"), BOUNCE_CMD_OTHER},
};
/* bit k: bounce_cmds[k] starts with this byte */
static const uint16_t bounce_cmd_first[256] = {
    ['H'] = 1u << 0, ['E'] = 1u << 1, ['S'] = 1u << 2, ['A'] = 0xfu << 3, ['M'] = 1u << 7,
    ['R'] = 1u << 8, ['D'] = 1u << 9, ['Q'] = 1u << 10, ['X'] = 1u << 11,
};

/* Commands starting at text[i] that were not seen before: marked seen in
 * *seen, and in *ok when they count. */
static void bounce_cmd_at(const char *text, size_t tl, size_t i, unsigned *seen, unsigned *ok)
{
    unsigned m = bounce_cmd_first[(unsigned char)text[i]] & ~*seen;
    while (m != 0) {
        unsigned k = (unsigned)__builtin_ctz(m);
        m &= m - 1;
        size_t wl = bounce_cmds[k].n;
        if (i + wl > tl)
            continue;
        /* every command has 4 bytes or more: those first, without a call */
        uint32_t t4, w4;
        memcpy(&t4, text + i, 4);
        memcpy(&w4, bounce_cmds[k].w, 4);
        if (t4 != w4 || (wl > 4 && memcmp(text + i + 4, bounce_cmds[k].w + 4, wl - 4) != 0))
            continue;
        *seen |= 1u << k;
        if (memchr(bounce_cmds[k].w, ' ', wl) == NULL) {
            /* a word of its own: no letter or digit either side */
            unsigned char b = i > 0 ? (unsigned char)text[i - 1] : ' ', a = (unsigned char)text[i + wl];
            if (isalnum(b) || b == '@' || isalnum(a) || a == '@')
                continue;
        }
        *ok |= 1u << k;
    }
}

#ifdef __SSE2__
/* Bit k: t[k] and t[k + 1] are capitals 'A'..'X', as the first two bytes
 * of every command are (k 0..15; t[16] is read). */
static inline unsigned bounce_cmd_cand16(const char *t)
{
    const __m128i base = _mm_set1_epi8('A'), span = _mm_set1_epi8('X' - 'A'), zero = _mm_setzero_si128();
    __m128i a = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)t), base);
    __m128i b = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(t + 1)), base);
    return (unsigned)_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(_mm_subs_epu8(a, span), zero), _mm_cmpeq_epi8(_mm_subs_epu8(b, span), zero)));
}
#endif

enum bounce_smtp_cmd bounce__cmd_find(const char *text)
{
    if (text == NULL)
        return BOUNCE_CMD_UNKNOWN;
    size_t tl = strlen(text), i = 0;
    unsigned seen = 0, ok = 0;
#ifdef __SSE2__
    /* two capitals in a row start few places of a text (one starts many):
     * 16 start positions tested at a time, the last ones as a block that
     * overlaps the ones already tested (its load ends at the NUL) */
    while (i + 16 <= tl || (i < tl && tl >= 16)) {
        size_t b = i + 16 <= tl ? i : tl - 16;
        for (unsigned mask = bounce_cmd_cand16(text + b) & (~0u << (i - b)); mask != 0; mask &= mask - 1)
            bounce_cmd_at(text, tl, b + (unsigned)__builtin_ctz(mask), &seen, &ok);
        i = b + 16;
    }
#endif
    for (; i < tl; i++)
        if ((unsigned char)(text[i] - 'A') <= 'X' - 'A' && (unsigned char)(text[i + 1] - 'A') <= 'X' - 'A')
            bounce_cmd_at(text, tl, i, &seen, &ok);
    return ok ? bounce_cmds[31 - __builtin_clz(ok)].c : BOUNCE_CMD_UNKNOWN;
}

/* The three digits of a reply code (200..599) and a NUL. */
static void bounce_code3(char out[4], int code)
{
    out[0] = (char)('0' + code / 100);
    out[1] = (char)('0' + code / 10 % 10);
    out[2] = (char)('0' + code % 10);
    out[3] = '\0';
}

/* CR, LF and TAB of s (n bytes, no NUL) made blanks; with SSE2 16 bytes
 * at a time (byte by byte this was a diagnostic's costliest step). */
static void bounce_blank_breaks(char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), tab = _mm_set1_epi8('\t'),
                  sp = _mm_set1_epi8(' ');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)), _mm_cmpeq_epi8(v, tab));
        if (_mm_movemask_epi8(m) != 0)
            _mm_storeu_si128((__m128i *)(s + i), _mm_or_si128(_mm_andnot_si128(m, v), _mm_and_si128(m, sp)));
    }
#endif
    for (; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\t')
            s[i] = ' ';
}

/* s (n bytes, then a NUL) with runs of blanks made one and leading blanks
 * dropped, in place; returns its new end (not terminated). With SSE2, 16 bytes that keep all
 * their blanks (no two adjacent, the first not after a kept blank or at
 * the start) are moved at once. */
static char *bounce_squeeze(char *s, size_t n)
{
    char *w = s;
    const char *r = s;
#ifdef __SSE2__
    const char *end = s + n;
    const __m128i sp = _mm_set1_epi8(' ');
    while (end - r >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)r);
        unsigned blank = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, sp));
        if ((blank & (blank << 1)) == 0 && ((blank & 1u) == 0 || (w != s && w[-1] != ' '))) {
            /* w <= r: the store only overwrites bytes already read */
            _mm_storeu_si128((__m128i *)w, v);
            w += 16;
            r += 16;
            continue;
        }
        for (const char *e = r + 16; r < e; r++) {
            if (*r == ' ' && (w == s || w[-1] == ' '))
                continue;
            *w++ = *r;
        }
    }
#else
    (void)n;
#endif
    for (; *r; r++) {
        if (*r == ' ' && (w == s || w[-1] == ' '))
            continue;
        *w++ = *r;
    }
    return w;
}

/* A diagnostic as the classifier reads it: one line, multi-line reply
 * prefixes ("550-5.7.1 ") folded away, an HTML block dropped, blanks
 * squeezed; with cut_boundary, cut at a MIME boundary marker (" --").
 * cs (16 bytes) and *cr: the status and reply code of the one-line text,
 * which for a raw of at most BOUNCE_DIAG_MAX bytes are those of raw itself
 * (neither search tells a line break from a blank): the classifier needs
 * both, and searching twice was a third of its cost. */
char *bounce__diag_clean_codes(const char *raw, size_t len, bool cut_boundary, char cs[16], int *cr)
{
    if (len > BOUNCE_DIAG_MAX)
        len = BOUNCE_DIAG_MAX;
    /* nothing after a NUL is ever read */
    len = strnlen(raw, len);
    char *s = bounce__strndup(raw, len);
    if (s == NULL)
        return NULL;
    bounce_blank_breaks(s, len);
    /* bounce__status_find() and bounce__reply_find() of s in one pass */
    uint64_t set[16];
    cs[0] = '\0';
    bounce_codes_scan(s, len, len >= 7 ? cs : NULL, set);
    *cr = len < 3 ? 0 : bounce_reply_pick(set, cs[0]);
    if (*cr > 0 && bounce__memistr(s, len, "x-unix") != NULL)
        *cr = 0;
    /* s's length, kept: every search below is told it */
    size_t sl = len;
    if (*cr > 0) {
        /* reply codes come from the tables of bounce__reply_find: three digits */
        char c3[4], pre[5];
        bounce_code3(c3, *cr);
        memcpy(pre, c3, 3);
        pre[3] = '-';
        pre[4] = '\0';
        if (strstr(s, pre) != NULL) {
            const char seps[2] = {'-', ' '};
            for (int k = 0; k < 2; k++) {
                char a[4 + 16], b[5];
                memcpy(b, c3, 3);
                b[3] = seps[k];
                b[4] = '\0';
                memcpy(a, b, 4);
                memcpy(a + 4, cs, strlen(cs) + 1);
                if (cs[0])
                    bounce__remove_all(s, a);
                bounce__remove_all(s, b);
            }
            sl = strlen(s);
            if (strstr(s, c3) != NULL) {
                /* "550 5.1.1 text" ("550  text" without a status) */
                size_t cl = strlen(cs);
                char *t = malloc(sl + 32);
                if (t != NULL) {
                    memcpy(t, c3, 3);
                    t[3] = ' ';
                    memcpy(t + 4, cs, cl);
                    t[4 + cl] = ' ';
                    memcpy(t + 5 + cl, s, sl + 1);
                    free(s);
                    s = t;
                    sl += 5 + cl;
                }
            }
        }
    }
    /* both tags or nothing: "</html>" is looked for only after "<html>" */
    const char *h1 = bounce__memistr(s, sl, "<html>");
    const char *h2 = h1 != NULL && h1 > s ? bounce__memistr(s, sl, "</html>") : NULL;
    if (h1 != NULL && h2 != NULL && h1 > s && h2 > h1) {
        size_t rest = sl - (size_t)(h2 + 7 - s);
        memmove((char *)h1, h2 + 7, rest + 1);
        sl = (size_t)(h1 - s) + rest;
    }
    /* squeeze and trim */
    char *w = bounce_squeeze(s, sl);
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
    if (cut_boundary && strstr(s, "-- ") == NULL) {
        char *cut = strstr(s, " --");
        if (cut != NULL)
            *cut = '\0';
    }
    return s;
}

char *bounce__diag_clean(const char *raw, size_t len, bool cut_boundary)
{
    char cs[16];
    int cr;
    return bounce__diag_clean_codes(raw, len, cut_boundary, cs, &cr);
}

void bounce__remove_all(char *s, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return;
    char *p;
    while ((p = strstr(s, needle)) != NULL)
        memmove(p, p + nl, strlen(p + nl) + 1);
}

void bounce__lower(char *s)
{
#ifdef __SSE2__
    size_t n = strlen(s), i = 0;
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(s + i), bounce_lower16(_mm_loadu_si128((const __m128i *)(s + i))));
    s += i;
#endif
    for (; *s; s++)
        *s = (char)bounce__fold[(unsigned char)*s];
}

/* A plausible internet host name: letters, digits, '-' and '.', a dot, no
 * empty label, a last label that is not all digits. */
static bool bounce_is_host(const char *h, size_t n)
{
    if (n < 4 || n > 255 || memchr(h, '.', n) == NULL || h[0] == '.' || h[0] == '-' || h[n - 1] == '-')
        return false;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!(isalnum(c) || c == '-' || c == '.'))
            return false;
        if (c == '.') {
            if (i + 1 < n && h[i + 1] == '.')
                return false;
            last = i + 1;
        }
    }
    if (n - last > 63 || n == last)
        return false;
    for (size_t i = last; i < n; i++)
        if (!isdigit((unsigned char)h[i]))
            return true;
    return false;
}

/* The remote host a diagnostic names: between "host " and " said: " (or
 * " [", " talk to me: "), after "while talking to ", "generating server: ",
 * before " did not like our " ...; of the candidates the longest. */
static bool bounce_is_open(char c)
{
    return c == '(' || c == '[' || c == '<';
}

static bool bounce_is_close(char c)
{
    return c == ')' || c == ']' || c == '>' || c == ':' || c == ';' || c == '.' || c == ',';
}

bool bounce__host_find(const char *text, char *out, size_t outlen)
{
    /* the beginnings apart: each is looked for once (three pairs begin with "host ") */
    static const char *const begins[] = {"host ", "while talking to ", " by ",
                                         "delivery failed for the following reason: ", "remote system: ",
                                         "smtp server <", "-mta: "};
    static const struct {
        unsigned char begin;
        const char *end;
    } sandwiched[] = {
        {0, " said: "}, {0, " talk to me: "}, {1, ":"}, {0, " ["}, {2, ". ["}, {3, " with"}, {4, "("},
        {5, ">"}, {6, ">"},
    };
    static const char *const after[] = {"generating server: ", "dsn generated by: ", NULL};
    out[0] = '\0';
    if (text == NULL || text[0] == '\0')
        return false;
    size_t tl = strlen(text);
    if (tl > BOUNCE_DIAG_MAX)
        tl = BOUNCE_DIAG_MAX;
    const char *from = NULL, *to = NULL;
    const char *at[sizeof begins / sizeof begins[0]];
    unsigned looked = 0;
    for (size_t i = 0; i < sizeof sandwiched / sizeof sandwiched[0] && from == NULL; i++) {
        unsigned k = sandwiched[i].begin;
        if (!(looked & (1u << k))) {
            looked |= 1u << k;
            at[k] = bounce__memistr(text, tl, begins[k]);
        }
        const char *a = at[k];
        if (a == NULL)
            continue;
        a += strlen(begins[k]);
        const char *b = bounce__memistr(a, tl - (size_t)(a - text), sandwiched[i].end);
        if (b != NULL && b > a) {
            from = a;
            to = b;
        }
    }
    for (const char *const *s = after; *s && from == NULL; s++) {
        const char *a = bounce__memistr(text, tl, *s);
        if (a != NULL) {
            from = a + strlen(*s);
            to = text + tl;
        }
    }
    if (from == NULL) {
        const char *u = bounce__memistr(text, tl, " did not like our ");
        from = text;
        to = u ? u : text + tl;
    }
    /* [from, to) holds no NUL: the byte tests need not stop at one. The
     * words are its runs of non-blanks, less the opening brackets they
     * start with and the closing ones (and dots) they end with; of those
     * that are host names the first longest. A host name has a dot, and
     * most words have none: only the runs with a dot are looked at (the
     * runs as a walk over every byte from from would find them). */
    size_t best = 0;
    for (const char *p = from; p < to;) {
        const char *d = memchr(p, '.', (size_t)(to - p));
        if (d == NULL)
            break;
        /* p is from or just after a run: the run of d starts at p or later */
        const char *w = d, *e = d + 1;
        while (w > p && !bounce_is_space((unsigned char)w[-1]))
            w--;
        while (e < to && !bounce_is_space((unsigned char)*e))
            e++;
        p = e;
        while (w < e && bounce_is_open(*w))
            w++;
        while (e > w && bounce_is_close(e[-1]))
            e--;
        size_t n = (size_t)(e - w);
        if (n > best && n < outlen && bounce_is_host(w, n)) {
            memcpy(out, w, n);
            out[n] = '\0';
            best = n;
        }
    }
    for (char *c = out; *c; c++)
        *c = (char)bounce__fold[(unsigned char)*c];
    return best > 0;
}
