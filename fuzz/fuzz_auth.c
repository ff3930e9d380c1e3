
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the gw_auth parsers of untrusted bytes: the
 * token (split, base64url, JSON header and payload, then the signature
 * check against a fixed key set, which also runs the ECDSA r||s to DER
 * conversion) and key documents (JWKS, single JWK, PEM).
 *
 * The first input byte selects the parser: even = token, odd = keys.
 */


#include "ngx_http_gw_auth_module.c"


static ngx_log_t     ngx_fuzz_log;
static ngx_pool_t   *ngx_fuzz_key_pool;
static ngx_array_t  *ngx_fuzz_keys;

/*
 * The verification keys: HS256 secret "h", RSA "r", P-256 "e", P-384
 * "e3", P-521 "e5", Ed25519 "d"; the seed corpus was signed with them.
 */

static const char  ngx_fuzz_jwks[] =
    "{\"keys\":[{\"k\":\"NhG9anf7e11-GgYXSTEyHO0-TxiikopFdC6ylbn3RQw\",\"kid"
    "\":\"h\",\"kty\":\"oct\"},{\"e\":\"AQAB\",\"kid\":\"r\",\"kty\":\"RSA\","
    "\"n\":\"qF9gfu6S26WviO_s1Nee4sWR-8D5lffYGGmcdyF5cnp7cQ265cR15y6lvz9qbnVA"
    "Tr6WwR-SJv2JehmELJHD3xFwD-vtxuDI9CI-gFqf6WPMK9V11UgEqDYpx50kFK1a69v5-uUn"
    "gEVH88WN_vDxv84uz0V6Zl_EMy2f5FR2vogsUHURE-Hb6LB40NWNOx4NutSAQ7RqKfg8ljda"
    "ZeIxTFUuu2Q2N8v0cz5O7n8s2vkmB_vaOWKmrnoh_hqxWVFHy-cfZqRIEHDdGlDBUPx_oEBH"
    "l7n5pUttMIofU7oR2pvoTZYJcCW7zU2cstdq548RehvGydd3vzvbg4_QwzCeiQ\"},{\"crv"
    "\":\"P-256\",\"kid\":\"e\",\"kty\":\"EC\",\"x\":\"_-4vlHmHnJpK-Foaa7WLAf"
    "4_myGoOUQPLhPU8T4SG0I\",\"y\":\"WHLdfLWQ2ofuDAjEFcA9hNesHe3LirW8APbiQbMG"
    "wts\"},{\"crv\":\"P-384\",\"kid\":\"e3\",\"kty\":\"EC\",\"x\":\"keS1uQrC"
    "s6ZwPRbKFUP3KYN5rMfw88C3-kb182c9ZJq1xdRXoIGJ7j8hksah4FWK\",\"y\":\"11fsq"
    "4ckOMSbd0bItRww8v2WkYhQS7k-kn_jIO6jPUQy2Tr5mOp9xdVurANSB_b5\"},{\"crv\":"
    "\"P-521\",\"kid\":\"e5\",\"kty\":\"EC\",\"x\":\"AT3PmdZmijKCHVvTsbjO5v4K"
    "Mc-ga1Oz9rofqM3gWl5SxEd0bAUov44V4lwujDqjzKo9PYQM73q_T09_vPlJfsA8\",\"y\""
    ":\"AXk0dVQCuTNSeM_bGd6_EqiVMSExL7ijHFWkzVWb7EiaefWEE_HjnnWA2W0bg5RsfKeqt"
    "ZRkXbHhsgzi-wlGgrH2\"},{\"crv\":\"Ed25519\",\"kid\":\"d\",\"kty\":\"OKP"
    "\",\"x\":\"x-1KWnYAqPv5XXDlpxCpEdU5PcjEeb97FDZxxLZrZrc\"}]}";


static void
ngx_fuzz_init(void)
{
    const char  *err;

    ngx_fuzz_key_pool = ngx_create_pool(4096, &ngx_fuzz_log);
    ngx_fuzz_keys = ngx_array_create(ngx_fuzz_key_pool, 8,
                                     sizeof(ngx_http_gw_auth_key_t));

    if (ngx_fuzz_keys == NULL
        || ngx_http_gw_auth_parse_keys((u_char *) ngx_fuzz_jwks,
                                       sizeof(ngx_fuzz_jwks) - 1,
                                       ngx_fuzz_key_pool, ngx_fuzz_keys,
                                       &err)
           != NGX_OK)
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *buf;
    void                      *iter;
    ngx_int_t                  rc;
    ngx_str_t                  token, value;
    ngx_pool_t                *pool;
    ngx_uint_t                 unknown;
    const char                *err;
    ngx_array_t               *keys;
    ngx_http_gw_auth_token_t   t;

    if (ngx_fuzz_keys == NULL) {
        ngx_fuzz_init();
    }

    if (size == 0) {
        return 0;
    }

    /* an exact copy, so that AddressSanitizer sees the input's end */

    buf = malloc(size > 1 ? size - 1 : 1);
    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, data + 1, size - 1);

    pool = ngx_create_pool(4096, &ngx_fuzz_log);
    if (pool == NULL) {
        free(buf);
        return 0;
    }

    if ((data[0] & 1) == 0) {
        token.data = buf;
        token.len = size - 1;

        rc = ngx_http_gw_auth_parse_token(&token, pool, &t);

        if (rc == NGX_OK) {
            (void) ngx_http_gw_auth_verify(&t, &ngx_fuzz_keys, 1, &unknown);

            /* every claim as a variable value */

            for (iter = json_object_iter(t.claims);
                 iter;
                 iter = json_object_iter_next(t.claims, iter))
            {
                (void) ngx_http_gw_auth_json_value(pool,
                                           json_object_iter_value(iter),
                                           &value, 1);
            }

            ngx_http_gw_auth_free_token(&t);
        }

    } else {
        keys = ngx_array_create(pool, 4, sizeof(ngx_http_gw_auth_key_t));

        if (keys != NULL) {
            (void) ngx_http_gw_auth_parse_keys(buf, size - 1, pool, keys,
                                               &err);
        }
    }

    ngx_destroy_pool(pool);
    free(buf);

    return 0;
}
