# Copyright (C) nginx-gw authors
# The demo's /api/batch (examples/nginx.conf through t/lib/GwDemo.pm): the
# three services called in parallel and answered as one JSON object in a
# fixed order; a service that is down, too slow (the batch deadline) or
# answers something other than JSON becomes an error entry; every call
# carries the batch's trace id; the batch is authenticated and rate limited
# as one request.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwDemo;
use IO::Socket::INET;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
no_root_location();

our $Alice = GwDemo::token("alice-$$");

# a service that accepts connections (the kernel does) and never answers
our $Hung = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
    or die "listen: $!";
our $HungPort = $Hung->sockport;

# a port where nothing listens: a service that is down
our $DownPort = GwDemo::free_port();

my $demo = GwDemo::defaults(faults => {
    'orders down' => { '/api/orders' => "proxy_pass http://127.0.0.1:$DownPort;" },
    'products slow' => { '/api/products' => "proxy_pass http://127.0.0.1:$HungPort;" },
    'users invalid' => { '/api/users' => "return 200 '{\"service\":\"user-service\",';" },
    'orders too big' => { '/api/orders' => "alias html/big.json;" },
});
add_block_preprocessor(sub { $demo->(@_) });

run_tests();

__DATA__

=== TEST 1: all up: the three answers in order, one trace id in every call
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice
X-Client-ID: batch-$$
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
--- error_code: 200
--- response_headers
Content-Type: application/json
X-Trace-ID: 4bf92f3577b34da6a3ce929d0e0e4736
X-RateLimit-Remaining: 99
--- response_body_like eval
qr/^\{"user":\{"service":"user-service","path":"\/api\/users",[^{}]*"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01",[^{}]*"auth_user":"alice-\d+"\},"orders":\{"service":"order-service",[^{}]*"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-\1-01",[^{}]*"auth_user":"alice-\d+"\},"products":\{"service":"product-service",[^{}]*"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-\1-01",[^{}]*"auth_user":"alice-\d+"\}\}\n\z/



=== TEST 2: all up, a trace of its own: the same id in the header and every call
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 200
--- response_body_like eval
qr/^\{"user":\{[^{}]*"trace_id":"([0-9a-f]{32})"[^{}]*\},"orders":\{[^{}]*"trace_id":"\1"[^{}]*\},"products":\{[^{}]*"trace_id":"\1"[^{}]*\}\}\n\z/
--- response_headers_like
X-Trace-ID: ^[0-9a-f]{32}$



=== TEST 3: orders down: an error entry with its status, the others answer
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 200
--- response_body_like eval
qr/^\{"user":\{"service":"user-service",[^{}]*\},"orders":\{"error":"failed","status":502\},"products":\{"service":"product-service",[^{}]*\}\}\n\z/
--- error_log
connect() failed (111: Connection refused)
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: products slow: a timeout entry at the deadline, the call cancelled
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 200
--- response_body_like eval
qr/^\{"user":\{"service":"user-service",[^{}]*\},"orders":\{"service":"order-service",[^{}]*\},"products":\{"error":"timeout","status":504\}\}\n\z/
--- error_log
gw_batch: "products" timed out after 1000ms
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: users invalid JSON: an error entry, the document stays JSON
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 200
--- response_body_like eval
qr/^\{"user":\{"error":"invalid JSON","status":200\},"orders":\{"service":"order-service",[^{}]*\},"products":\{"service":"product-service",[^{}]*\}\}\n\z/
--- error_log
gw_batch: "user" answered invalid JSON: unexpected end at byte 26



=== TEST 6: orders too big for the demo's 16k: an error entry, not a failed batch
--- user_files eval
">>> big.json\n\"" . ('x' x 20000) . "\"\n"
--- request
GET /api/batch
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 200
--- response_body_like eval
qr/^\{"user":\{"service":"user-service",[^{}]*\},"orders":\{"error":"failed","status":502\},"products":\{"service":"product-service",[^{}]*\}\}\n\z/
--- error_log
too big subrequest response
--- no_error_log
[alert]
[crit]



=== TEST 7: the batch needs a token like every /api/ route
--- request
GET /api/batch
--- error_code: 401
--- response_body chomp
{"error":"Unauthorized","reason":"missing"}



=== TEST 8: only GET and HEAD
--- request
POST /api/batch
x=1
--- more_headers eval
"Authorization: Bearer $::Alice"
--- error_code: 405
