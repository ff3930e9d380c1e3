# Copyright (C) nginx-gw authors
# gw_metrics configuration errors: each one stops nginx with a clear
# message, none starts a gateway that silently counts nothing.

use Test::Nginx::Socket 'no_plan';
use GwTest;

no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics'],
    config => 'location = /t { return 200; }'
);

run_tests();

__DATA__

=== TEST 1: buckets out of order
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 0.5 0.25;
--- must_die
--- error_log
bucket "0.25" is not greater than "0.5", buckets must be in increasing order



=== TEST 2: a bucket twice
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 0.1;
--- must_die
--- error_log
bucket "0.1" is not greater than "0.1", buckets must be in increasing order



=== TEST 3: negative bucket
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets -1 1;
--- must_die
--- error_log
invalid bucket "-1": seconds from 0 to 1000000000 with at most 6 decimals expected



=== TEST 4: buckets that are not plain decimal seconds
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 1e3;
--- must_die
--- error_log
invalid bucket "1e3"



=== TEST 5: bucket finer than a microsecond
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.0000001;
--- must_die
--- error_log
invalid bucket "0.0000001"



=== TEST 6: bucket above 10^9 seconds
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 1000000001;
--- must_die
--- error_log
invalid bucket "1000000001"



=== TEST 7: +Inf is implied, not written
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 +Inf;
--- must_die
--- error_log
invalid bucket "+Inf"



=== TEST 8: more than 32 buckets
--- http_config eval
"gw_metrics_zone gwm 1m;\ngw_metrics_buckets "
. CORE::join(" ", map { $_ / 100 } 1 .. 33) . ";"
--- must_die
--- error_log
too many buckets, 32 at most



=== TEST 9: gw_metrics_buckets twice
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 1;
    gw_metrics_buckets 0.2 2;
--- must_die
--- error_log
"gw_metrics_buckets" directive is duplicate



=== TEST 10: gw_metrics_buckets is not a server directive
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics_buckets 0.1 1;
--- must_die
--- error_log
"gw_metrics_buckets" directive is not allowed here



=== TEST 11: gw_metrics on without a zone
--- config
    location /a { gw_metrics on; return 200; }
--- must_die
--- error_log
"gw_metrics on" requires a "gw_metrics_zone"



=== TEST 12: an endpoint without a zone
--- config
    location = /metrics { gw_metrics_endpoint; }
--- must_die
--- error_log
"gw_metrics_endpoint" requires a "gw_metrics_zone"



=== TEST 13: zone smaller than 32k
--- http_config
    gw_metrics_zone gwm 16k;
--- must_die
--- error_log
zone "gwm" is too small



=== TEST 14: zone size that is not a size
--- http_config
    gw_metrics_zone gwm lots;
--- must_die
--- error_log
invalid zone size "lots"



=== TEST 15: max_series not a positive number
--- http_config
    gw_metrics_zone gwm 1m max_series=0;
--- must_die
--- error_log
invalid max_series "0"



=== TEST 16: max_series beyond what the zone can hold
--- http_config
    gw_metrics_zone gwm 1m max_series=100000;
--- must_die
--- error_log
max_series=100000 needs a zone of at least 25000k



=== TEST 17: unknown zone parameter
--- http_config
    gw_metrics_zone gwm 1m series=10;
--- must_die
--- error_log
invalid parameter "series="...
--- no_error_log
series=10



=== TEST 18: two zones
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_zone other 1m;
--- must_die
--- error_log
"gw_metrics_zone" directive is duplicate



=== TEST 19: a zone name another module already uses
--- http_config
    limit_req_zone $binary_remote_addr zone=shared:1m rate=1r/s;
    gw_metrics_zone shared 1m;
--- must_die
--- error_log
the shared memory zone "shared" is already declared for a different use



=== TEST 20: gw_metrics_endpoint twice in a location
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics { gw_metrics_endpoint; gw_metrics_endpoint; }
--- must_die
--- error_log
"gw_metrics_endpoint" directive is duplicate



=== TEST 21: gw_metrics_route takes one name
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location /a { gw_metrics_route a b; return 200; }
--- must_die
--- error_log
invalid number of arguments in "gw_metrics_route" directive



=== TEST 22: gw_metrics takes on or off
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location /a { gw_metrics yes; return 200; }
--- must_die
--- error_log
invalid value "yes" in "gw_metrics" directive, it must be "on" or "off"



=== TEST 23: a valid configuration still starts: zone alone, no counting
--- http_config
    gw_metrics_zone gwm 1m;
--- request
GET /t
--- error_code: 200
