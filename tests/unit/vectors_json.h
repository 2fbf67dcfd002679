/*
 * vectors_json.h - test-only reader for the flat JSON objects of
 * tests/vectors/merkle (one object per file). Not for production input:
 * it reads exactly the subset those files use and rejects everything else.
 *
 * Accepted: one object; keys are plain strings; values are strings without
 * escapes, non-negative integers that fit in uint64_t (no sign, fraction,
 * exponent or leading zero), true, false, null, or arrays of such strings.
 * Bounded: at most VJ_MAX_FIELDS keys, VJ_MAX_ITEMS array items; strings are
 * spans into the caller's text, which must outlive the object. Duplicate keys
 * and anything after the object but whitespace are errors.
 */
#ifndef VALISE_TEST_VECTORS_JSON_H
#define VALISE_TEST_VECTORS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { VJ_MAX_FIELDS = 16, VJ_MAX_ITEMS = 128, VJ_MAX_KEY = 31 };

enum vj_type { VJ_STRING = 1, VJ_NUMBER, VJ_BOOL, VJ_NULL, VJ_ARRAY };

struct vj_span {
    const char *p;
    size_t len;
};

struct vj_field {
    char key[VJ_MAX_KEY + 1];
    enum vj_type type;
    struct vj_span str; /* VJ_STRING */
    uint64_t num;       /* VJ_NUMBER */
    int boolean;        /* VJ_BOOL */
    size_t n_items;     /* VJ_ARRAY */
    struct vj_span items[VJ_MAX_ITEMS];
};

struct vj_object {
    size_t n;
    struct vj_field f[VJ_MAX_FIELDS];
};

struct vj_cursor {
    const char *p;
    size_t len;
    size_t off;
};

static void vj_skip_ws(struct vj_cursor *c)
{
    while (c->off < c->len && (c->p[c->off] == ' ' || c->p[c->off] == '\t' ||
                               c->p[c->off] == '\n' || c->p[c->off] == '\r'))
        c->off++;
}

static int vj_expect(struct vj_cursor *c, char ch)
{
    vj_skip_ws(c);
    if (c->off >= c->len || c->p[c->off] != ch)
        return -1;
    c->off++;
    return 0;
}

static int vj_literal(struct vj_cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len - c->off < n || memcmp(c->p + c->off, lit, n) != 0)
        return -1;
    c->off += n;
    return 0;
}

static int vj_string(struct vj_cursor *c, struct vj_span *out)
{
    size_t start;

    if (vj_expect(c, '"') != 0)
        return -1;
    start = c->off;
    for (;;) {
        if (c->off >= c->len)
            return -1;
        unsigned char ch = (unsigned char)c->p[c->off];
        if (ch == '"')
            break;
        if (ch == '\\' || ch < 0x20)
            return -1; /* no escapes or control bytes in these files */
        c->off++;
    }
    out->p = c->p + start;
    out->len = c->off - start;
    c->off++;
    return 0;
}

static int vj_number(struct vj_cursor *c, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = c->off;

    while (c->off < c->len && c->p[c->off] >= '0' && c->p[c->off] <= '9') {
        uint64_t d = (uint64_t)(c->p[c->off] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        c->off++;
    }
    if (c->off == start)
        return -1;
    if (c->p[start] == '0' && c->off - start > 1)
        return -1;
    if (c->off < c->len && (c->p[c->off] == '.' || c->p[c->off] == 'e' || c->p[c->off] == 'E'))
        return -1;
    *out = v;
    return 0;
}

static int vj_value(struct vj_cursor *c, struct vj_field *f)
{
    vj_skip_ws(c);
    if (c->off >= c->len)
        return -1;
    switch (c->p[c->off]) {
    case '"':
        f->type = VJ_STRING;
        return vj_string(c, &f->str);
    case 't':
        f->type = VJ_BOOL;
        f->boolean = 1;
        return vj_literal(c, "true");
    case 'f':
        f->type = VJ_BOOL;
        f->boolean = 0;
        return vj_literal(c, "false");
    case 'n':
        f->type = VJ_NULL;
        return vj_literal(c, "null");
    case '[':
        f->type = VJ_ARRAY;
        f->n_items = 0;
        c->off++;
        vj_skip_ws(c);
        if (c->off < c->len && c->p[c->off] == ']') {
            c->off++;
            return 0;
        }
        for (;;) {
            if (f->n_items >= VJ_MAX_ITEMS)
                return -1;
            if (vj_string(c, &f->items[f->n_items]) != 0)
                return -1;
            f->n_items++;
            vj_skip_ws(c);
            if (c->off < c->len && c->p[c->off] == ',') {
                c->off++;
                continue;
            }
            return vj_expect(c, ']');
        }
    default:
        f->type = VJ_NUMBER;
        return vj_number(c, &f->num);
    }
}

/* 0 on success, -1 on anything outside the subset. */
static int vj_parse(struct vj_object *o, const char *text, size_t len)
{
    struct vj_cursor c = {text, len, 0};
    struct vj_span key;

    memset(o, 0, sizeof(*o));
    if (vj_expect(&c, '{') != 0)
        return -1;
    vj_skip_ws(&c);
    if (c.off < c.len && c.p[c.off] == '}') {
        c.off++;
        goto end;
    }
    for (;;) {
        struct vj_field *f;

        if (o->n >= VJ_MAX_FIELDS)
            return -1;
        f = &o->f[o->n];
        if (vj_string(&c, &key) != 0 || key.len == 0 || key.len > VJ_MAX_KEY)
            return -1;
        memcpy(f->key, key.p, key.len);
        f->key[key.len] = '\0';
        for (size_t i = 0; i < o->n; i++)
            if (strcmp(o->f[i].key, f->key) == 0)
                return -1;
        if (vj_expect(&c, ':') != 0 || vj_value(&c, f) != 0)
            return -1;
        o->n++;
        vj_skip_ws(&c);
        if (c.off < c.len && c.p[c.off] == ',') {
            c.off++;
            continue;
        }
        if (vj_expect(&c, '}') != 0)
            return -1;
        break;
    }
end:
    vj_skip_ws(&c);
    return c.off == c.len ? 0 : -1;
}

static const struct vj_field *vj_get(const struct vj_object *o, const char *key,
                                     enum vj_type type)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->f[i].key, key) == 0)
            return o->f[i].type == type ? &o->f[i] : NULL;
    return NULL;
}

#endif
