# Copyright (C) nginx-gw authors
# The demo's canary recipe (examples/nginx.conf through t/lib/GwDemo.pm):
# split_clients on the VERIFIED user id sends a stable share of users to
# backend-canary; the expected variant of every user is computed here, with
# an independent MurmurHash2 and the percentage read from the demo's config.
# Only the demo's testers may pick a variant with X-Canary.  The variant is
# in the response, the access log and the metrics' path label.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwDemo;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
no_root_location();

# the demo's split: split_clients "<prefix>${gw_jwt_claim_sub}" { N% canary; }
my $conf = GwDemo::slurp("$FindBin::Bin/../examples/nginx.conf");
$conf =~ /split_clients\s+"([^"\$]*)\$\{gw_jwt_claim_sub\}"\s+\$gw_canary_split\s*\{\s*([\d.]+)%\s+canary;/
    or die "no canary split_clients in examples/nginx.conf";
our ($Salt, $Percent) = ($1, $2);

# nginx's MurmurHash2 (ngx_murmur_hash2), written from the algorithm
sub murmur2 {
    my @d = unpack 'C*', shift;
    my $m = 0x5bd1e995;
    my $mul = sub { my ($a, $b) = @_;
                    ((($a & 0xffff) * $b) + (((($a >> 16) * $b) & 0xffff) << 16))
                    & 0xffffffff };
    my $h = scalar(@d) & 0xffffffff;
    my $i = 0;

    while (@d - $i >= 4) {
        my $k = $d[$i] | $d[$i + 1] << 8 | $d[$i + 2] << 16 | $d[$i + 3] << 24;
        $k = $mul->($k, $m);
        $k ^= $k >> 24;
        $k = $mul->($k, $m);
        $h = $mul->($h, $m) ^ $k;
        $i += 4;
    }

    my $left = @d - $i;
    $h ^= $d[$i + 2] << 16 if $left >= 3;
    $h ^= $d[$i + 1] << 8 if $left >= 2;
    $h = $mul->($h ^ $d[$i], $m) if $left >= 1;

    $h ^= $h >> 13;
    $h = $mul->($h, $m);
    $h ^= $h >> 15;

    return $h;
}

sub variant {
    my $limit = int($Percent * 100 + 0.5) * 0xffffffff / 10000;
    return murmur2($Salt . shift) < int($limit) ? 'canary' : 'stable';
}

# users, and which variant each must get (fixed names: every run tests the
# same split; Redis keys and the cache are per run and per block anyway)
our @Users = map { "user$_" } 1 .. 40;
our @Expect = map { variant($_) } @Users;
our ($CanaryUser) = grep { variant($_) eq 'canary' } map { "c$_-0" } 1 .. 500;
our ($StableUser) = grep { variant($_) eq 'stable' } map { "s$_-0" } 1 .. 50;

die "the demo's split gives no canary among 40 users: pick others"
    unless grep { $_ eq 'canary' } @Expect;
our %Token = map { $_ => GwDemo::token($_) } @Users, $CanaryUser,
                                             $StableUser, 'tester';

my $demo = GwDemo::defaults(config => <<_EOC_);
        # the test's window on the metrics port
        location = /t/metrics {
            gw_auth_jwt off;
            gw_metrics off;
            proxy_pass http://127.0.0.1:$GwDemo::Port{metrics}/metrics;
        }
_EOC_
add_block_preprocessor(sub { $demo->(@_) });

run_tests();

__DATA__

=== TEST 1: every user gets the variant of their hash, every time
--- request eval
[ map { "GET /api/orders" } @::Users, @::Users ]
--- more_headers eval
[ map { "Authorization: Bearer $::Token{$_}" } @::Users, @::Users ]
--- error_code eval
[ (200) x (2 * @::Users) ]
--- response_headers eval
[ map { "X-Variant: $_" } @::Expect, @::Expect ]
--- response_body_like eval
[ map { $_ eq 'canary' ? qr/"instance":"canary1"/ : qr/"instance":"app[123]"/ }
  @::Expect, @::Expect ]



=== TEST 2: the split is on the verified id: forged ids never choose
--- request eval
["GET /api/orders", "GET /api/orders", "GET /index.html"]
--- more_headers eval
["Authorization: Bearer $::Token{$::StableUser}\nX-User-ID: $::CanaryUser",
 "Authorization: Bearer "
 . GwAuth::gw_token(GwAuth::gw_key('other', 'rsa'), 'RS256',
                    { sub => $::CanaryUser, exp => time + 60 },
                    { kid => 'demo' }),
 ""]
--- error_code eval
[200, 401, 200]
--- response_headers eval
["X-Variant: stable", "X-Variant: stable", "X-Variant: stable"]
--- response_body_like eval
[qr/"instance":"app\d","trace_id":"[^"]*","traceparent":"[^"]*","tracestate":"","auth_user":"s\d+-\d+"/,
 qr/"reason":"invalid"/, qr/"instance":"app\d"/]



=== TEST 3: X-Canary picks a variant for testers only
--- request eval
["GET /api/orders", "GET /api/orders", "GET /api/orders", "GET /api/orders",
 "GET /api/orders"]
--- more_headers eval
["Authorization: Bearer $::Token{tester}\nX-Canary: canary",
 "Authorization: Bearer $::Token{tester}\nX-Canary: stable",
 "Authorization: Bearer $::Token{$::StableUser}\nX-Canary: canary",
 "Authorization: Bearer $::Token{$::CanaryUser}\nX-Canary: stable",
 "Authorization: Bearer $::Token{$::CanaryUser}"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Variant: canary", "X-Variant: stable", "X-Variant: stable",
 "X-Variant: canary", "X-Variant: canary"]
--- response_body_like eval
[qr/"instance":"canary1"/, qr/"instance":"app\d"/, qr/"instance":"app\d"/,
 qr/"instance":"canary1"/, qr/"instance":"canary1"/]



=== TEST 4: the variant in the access log: a canary user
--- request
GET /api/orders
--- more_headers eval
"Authorization: Bearer $::Token{$::CanaryUser}"
--- error_code: 200
--- access_log eval
qr{^[0-9a-f]{32} [0-9a-f]{32} GET /api/orders 200 [\d.]+ 127\.0\.0\.1:\d+ user=c\d+-\d+ auth=ok ratelimit=PASSED variant=canary$}m



=== TEST 5: the variant in the access log: a batch of a stable user
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Token{$::StableUser}"
--- error_code: 200
--- response_body_like chomp
^\{"user":\{[^{}]*"instance":"app\d"[^{}]*\},"orders":\{[^{}]*"instance":"app\d"[^{}]*\},"products":\{[^{}]*"instance":"app\d"
--- access_log eval
qr{^[0-9a-f]{32} [0-9a-f]{32} GET /api/batch 200 [\d.]+ - user=s\d+-\d+ auth=ok ratelimit=PASSED variant=stable$}m



=== TEST 6: the variant in the metrics' path label, the batch's calls too
--- request eval
["GET /api/orders", "GET /api/orders", "GET /api/batch", "GET /t/metrics"]
--- more_headers eval
["Authorization: Bearer $::Token{$::CanaryUser}",
 "Authorization: Bearer $::Token{$::StableUser}",
 "Authorization: Bearer $::Token{$::CanaryUser}", ""]
--- error_code eval
[200, 200, 200, 200]
--- response_body_filters eval
[[], [], [], [sub { CORE::join "", sort grep { /^gateway_requests_total\{/ } split /^/, $_[0] }]]
--- response_body_like eval
[qr/canary1/, qr/app\d/,
 qr/^\{"user":\{[^{}]*"instance":"canary1"[^{}]*\},"orders":\{[^{}]*"instance":"canary1"[^{}]*\},"products":\{[^{}]*"instance":"canary1"/,
 qr/\Agateway_requests_total\{method="GET",path="\/api\/batch\@canary",status="200"\} 1
gateway_requests_total\{method="GET",path="\/api\/orders\@canary",status="200"\} 1
gateway_requests_total\{method="GET",path="\/api\/orders\@stable",status="200"\} 1
\z/]
