
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the JOSE layer of gw_auth (ngx_http_gw_jwt.c,
 * linked as a unit): tokens (JWS, JWE and nested: split, base64url, JSON
 * header, signature check or key unwrap and authenticated decryption,
 * claims) against fixed key sets, every claim as a variable value, and
 * key documents (JWKS, single JWK, PEM).
 *
 * The first input byte selects: bit 0 set = key document; else a token,
 * of type signed, encrypted or nested by (byte >> 1) % 3, checked in
 * strict mode when bit 3 is set.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_jwt.h"


static ngx_log_t     ngx_fuzz_log;
static ngx_pool_t   *ngx_fuzz_key_pool;
static ngx_array_t  *ngx_fuzz_sets[2];

/*
 * The verification keys: HS256 secret "h", RSA "r", P-256 "e", P-384
 * "e3", P-521 "e5", Ed25519 "d"; the signed seeds were made with them.
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


/*
 * Decryption keys: oct keys for dir ("d32", "d64"), A128KW ("k16"),
 * A256KW ("k32"), A192GCMKW ("g24"), an HS256 secret ("h32"), a private
 * RSA key for RSA-OAEP* ("ro") and an RSA signature key ("rs"); the JWE
 * seeds (Crypt::JWT) were made with them.
 */

static const char  ngx_fuzz_jwe_keys[] =
    "{\"keys\":[{\"k\":\"REREREREREREREREREREREREREREREREREREREREREQ\",\"kid\""
    ":\"d32\",\"kty\":\"oct\"},{\"k\":\"RUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFR"
    "UVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRQ\",\"kid\":\"d64\",\"kt"
    "y\":\"oct\"},{\"k\":\"R0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dH\",\"kid\":\"g24\""
    ",\"kty\":\"oct\"},{\"k\":\"SEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEg\""
    ",\"kid\":\"h32\",\"kty\":\"oct\"},{\"k\":\"S0tLS0tLS0tLS0tLS0tLSw\",\"ki"
    "d\":\"k16\",\"kty\":\"oct\"},{\"k\":\"TExMTExMTExMTExMTExMTExMTExMTExMTE"
    "xMTExMTEw\",\"kid\":\"k32\",\"kty\":\"oct\"},{\"d\":\"IUUeVDQKjPXl6oc7Bb"
    "39ItEgOePsxZeEZifg6riPPs5hq1pnG_cn3GxNzsyBAktNGaZ0h5fj1tun09KUBcOBZPXX3h"
    "cAvHbZxLYs5f2ZJ77RZZjOl8LsMJ49zLmRZarE_hOsK3s8CaRYq8kpRq8qyXUcMruI5n98ps"
    "7UgqLA2qP2VHc_vL_GZ3sF46k2B1NZH3OGDkXfbxfBoCty-YAxPFa6vkRLWMwMz4t8IuDFDE"
    "3laOrF9OG0YcynJC1l2HgMCqHWgpjnp3-cl72crcsBjRBxEwWI0aFVrEbHWmTvLIBsBdKkJE"
    "YXSzKPKAZny-_18jDUKZeUrIPSk8asdaqCMQ\",\"dp\":\"DhMdzjXiyTnKSFYE4DmHzDqJ"
    "LpFZBongeCqMRxksZUrs11R9zP8fy-7Q_KHUQ2GZIlmIr5rtm6tdaO6TWCx7592-I21J3vL0"
    "S1uiZ58qV_4a7CPBzA48W08ToBnjOBcDz9SyNqw5onRDax11A_Pp-kBs1KjxiIuGY3xU6eyZ"
    "ZfU\",\"dq\":\"B9VdgAZ8tTzuDqlTzB-6b7SiFOug17v5khAucO7nxxVIvYbdKzPcBB4Wy"
    "FaeutgOhkd5ZGgyZSgTuAYNWIMAgCaG9ZPAPe-W5CFVIsrAxR5BHQF0jkKFY7DvJRBbeefsC"
    "nDuxQVlX4QyPo7S06Ovi487XfxNRReFx7aVmDHF6bE\",\"e\":\"AQAB\",\"kid\":\"ro"
    "\",\"kty\":\"RSA\",\"n\":\"u8O4NLI656OPzJ2oTbWpLoKYxg64AC7HnLbpJCz4szgmC"
    "0-Pcf2X3wYlCcivMFdJIkgR25GKflR4ZkEvLFsHNUFksKU5mnkC46jeZU8GNpr7IEoqDYDGq"
    "Utv2HslsQQEB-gnC6NEaiJUz5Lxlw1yatnSNWjfOwM1-_RNDutdjrwBMIfnp8TS-64cydWoD"
    "yHSPvA5Ok1Bp1NP0jhRgHTSYA6ZftLduWM0hOjQIimJBOxjTj-WjpPBGksoO3gh2RnBnV9FQ"
    "0gYEeQ7Cfnwh5EVHzLvspMTPo64Zh1cP7s_eL0EcQ6iogExbvpFdpQlLJY0TJQsaeFL7g0Tg"
    "Oh8P2IHMw\",\"p\":\"xFdlwMX3c3GkWkEFBsdwdPTaBnV2BZt2yxcE_nHADXoRV5XpoXQc"
    "EOz6aW466qHCGFbqX-I0dAKspP-wKBiiZy_z25GP-piIykSJftUPGkoMi9yTxSa2FcQAZCDg"
    "LQXFTfNAX9HO4smAdOCC2xsGHK8xpWxW1MqmQOJE__k0xyM\",\"q\":\"9NEpjfn8Tdegun"
    "Y6h_Aytz_SSbNOLMfhfB_NWeR_NIBn3cT_pFJuHNLRij4liPJfQ0P1PhaPfHTQhgPUXU-Y3J"
    "m2CGNZsKDB09Wrx9R8gUjo1jI-OcC4XY1Y_tcrXsg0DNCotS-Jc0_uwb93km97FfJwtKMBwd"
    "YceSWjUJ37yLE\",\"qi\":\"bKjkXo5Xt5Dq8BHMFnbisuPATiLrPD8e5OekDGg9bCrI3oR"
    "_sXwAxQWbeMDdErldwk3NuQ_mvHymH5AG0yRzco0uCoLeLXwKPY99v8XW8iFqWo7a6V5-loM"
    "14g7xFNNYq3bTzSfG2yaajrET1ef3T4MDfrtkHdEdLlLrb19pkz8\"},{\"e\":\"AQAB\","
    "\"kid\":\"rs\",\"kty\":\"RSA\",\"n\":\"_taLCMpt5VPhHizkAjkeFJv5vTPLlOcDu"
    "q6RgmWV-C4nFVA_h0TnOeB3Jk7d4cDo90acjlKWBcrLVpw7TwXrhbxjVPWMM7j226l9kymMj"
    "BEVZnXsPHrwmuBbGoNZOu3r7uxJzpgSNPyPmWBF-LuqXs6VWdeNOY8f0wfB1SAAS5Ldk5uIS"
    "qPUah2196Ij_S0fePMnVwS_9toDeoek3dtoyIBePs4VDTAvvgU86e_GIr9IPq55pCHwIHHrh"
    "rC15ucKU-CJT6CSzaisTjf-po_zNxiNFmLYMRIw-Jph5g_6SH5xxL05vwXfZ3fXU_9rREJRA"
    "FI9IxWQl-8DH-XukPSbGQ\"}]}";


static void
ngx_fuzz_init(void)
{
    const char  *err;

    ngx_fuzz_key_pool = ngx_create_pool(4096, &ngx_fuzz_log);

    ngx_fuzz_sets[0] = ngx_array_create(ngx_fuzz_key_pool, 8,
                                        sizeof(ngx_http_gw_jwt_key_t));
    ngx_fuzz_sets[1] = ngx_array_create(ngx_fuzz_key_pool, 8,
                                        sizeof(ngx_http_gw_jwt_key_t));

    if (ngx_fuzz_sets[0] == NULL || ngx_fuzz_sets[1] == NULL
        || ngx_http_gw_jwt_parse_keys((u_char *) ngx_fuzz_jwks,
                                      sizeof(ngx_fuzz_jwks) - 1,
                                      ngx_fuzz_key_pool, ngx_fuzz_sets[0],
                                      &err)
           != NGX_OK
        || ngx_http_gw_jwt_parse_keys((u_char *) ngx_fuzz_jwe_keys,
                                      sizeof(ngx_fuzz_jwe_keys) - 1,
                                      ngx_fuzz_key_pool, ngx_fuzz_sets[1],
                                      &err)
           != NGX_OK)
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                  *buf;
    void                    *iter;
    ngx_str_t                token, value;
    ngx_uint_t               i;
    ngx_pool_t              *pool;
    const char              *err, *why;
    ngx_array_t             *keys;
    ngx_http_gw_jwt_t        jwt;
    ngx_http_gw_jwt_key_t   *k;
    ngx_http_gw_jwt_keys_t   ks;

    static ngx_uint_t  types[] = {
        NGX_HTTP_GW_JWT_SIGNED, NGX_HTTP_GW_JWT_ENCRYPTED,
        NGX_HTTP_GW_JWT_NESTED
    };

    if (ngx_fuzz_key_pool == NULL) {
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

        ks.sets = ngx_fuzz_sets;
        ks.nsets = 2;
        ks.type = types[(data[0] >> 1) % 3];
        ks.strict = (data[0] >> 3) & 1;

        if (ngx_http_gw_jwt_decode(&token, &ks, pool, &jwt) == NGX_OK) {

            /* every claim as a variable value */

            for (iter = json_object_iter(jwt.claims);
                 iter;
                 iter = json_object_iter_next(jwt.claims, iter))
            {
                (void) ngx_http_gw_jwt_value(pool,
                                             json_object_iter_value(iter),
                                             &value, 1);
            }

            (void) ngx_http_gw_jwt_sanitize(pool, jwt.payload.data,
                                            jwt.payload.len, &value);
        }

        ngx_http_gw_jwt_free(&jwt);

    } else {
        keys = ngx_array_create(pool, 4, sizeof(ngx_http_gw_jwt_key_t));

        if (keys != NULL
            && ngx_http_gw_jwt_parse_keys(buf, size - 1, pool, keys, &err)
               == NGX_OK)
        {
            k = keys->elts;

            for (i = 0; i < keys->nelts; i++) {
                (void) ngx_http_gw_jwt_key_usable(&k[i], types[i % 3],
                                                  i & 1, &why);
                (void) ngx_http_gw_jwt_key_type(&k[i]);
                (void) ngx_http_gw_jwt_key_min(&k[i]);
            }
        }
    }

    ngx_destroy_pool(pool);
    free(buf);

    return 0;
}
