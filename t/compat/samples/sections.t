# Copyright (C) nginx-gw authors
# Every section the compat runner implements, against stock nginx only.
# Must pass, with the same test count, under t/compat and under upstream
# Test::Nginx (see t/compat/README).
use Test::Nginx::Socket 'no_plan';

repeat_each(2);
no_shuffle();
workers(1);
worker_connections(256);
log_level('debug');
env_to_nginx('TZ');

# the project's convention: a block that says nothing about the error log
# must not log errors
add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->error_log && !defined $block->no_error_log) {
        $block->set_value("no_error_log", "[error]\n[alert]\n[emerg]\n");
    }
});

run_tests();

__DATA__

=== TEST 1: return, error_code, response_headers, response_body
--- config
    location = /t {
        add_header X-Gw "one";
        return 201 "hello\n";
    }
--- request
GET /t
--- error_code: 201
--- response_headers
X-Gw: one
Content-Type: text/plain
!X-Absent
--- response_body
hello



=== TEST 2: more_headers (comments skipped), explicit HTTP/1.0
--- config
    location = /echo {
        return 200 "$server_protocol|$http_x_one|$http_x_two|$http_host|$http_connection";
    }
--- request
GET /echo HTTP/1.0
--- more_headers
X-One: 1
# a comment line
X-Two: two words
--- response_body chomp
HTTP/1.0|1|two words|localhost|close



=== TEST 3: a request body gets a Content-Length (body trimmed)
--- config
    location = /body {
        proxy_set_header X-Body $request_body;
        proxy_set_header X-Len $http_content_length;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/back;
    }
    location = /back {
        return 200 "[$http_x_body] $http_x_len\n";
    }
--- request
POST /body
hello world
--- response_body
[hello world] 11



=== TEST 4: response_body_like (whole body, /s), response_headers_like
--- config
    location = /t {
        return 200 "id=12345\nsecond line\n";
    }
--- request
GET /t
--- response_headers_like
Content-Length: \d+
Server: nginx.*
X-None:
--- response_body_like: ^id=\d+.second line$



=== TEST 5: response_body_unlike
--- config
    location = /t {
        return 200 "all fine\n";
    }
--- request
GET /t
--- response_body_unlike: error|fail



=== TEST 6: response_body eval returning a regex
--- config
    location = /t {
        return 200 "hello 42";
    }
--- request
GET /t
--- response_body eval
qr/^hello \d+$/



=== TEST 7: response_body_filters by name
--- config
    location = /t {
        return 200 "MiXeD\n";
    }
--- request
GET /t
--- response_body_filters
lc ucfirst
--- response_body
Mixed



=== TEST 8: request array, per-request expectations, per-request filters
--- config
    location = /n {
        add_header X-Which "n$arg_a";
        return 200 "n$arg_a\n";
    }
    location = /gone {
        return 410;
    }
--- request eval
["GET /n?a=1", "GET /n?a=22", "GET /gone"]
--- error_code eval
[200, 200, 410]
--- response_headers eval
["X-Which: n1", "X-Which: n22", "!X-Which"]
--- response_body_filters eval
[[sub { my $b = shift; $b =~ s/\d/N/g; $b }], ["length"], ["uc"]]
--- response_body_like eval
["^nN\$", "^4\$", "410 GONE"]



=== TEST 9: pipelined_requests over one keep-alive connection
--- config
    location = /p {
        return 200 "$request_uri;$connection_requests\n";
    }
--- pipelined_requests eval
["GET /p?1", "GET /p?2", "GET /p?3"]
--- response_body eval
["/p?1;1\n", "/p?2;2\n", "/p?3;3\n"]



=== TEST 10: raw_request sent verbatim
--- config
    location = /raw {
        return 200 "$host $request_method";
    }
--- raw_request eval
"PUT /raw HTTP/1.1\r\nHost: raw.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
--- response_body chomp
raw.example PUT



=== TEST 11: HEAD: headers only
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body eval
""



=== TEST 12: fake TCP peer: tcp_listen, tcp_query, tcp_reply; chunked to us
--- config
    location = /fake {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/x;
        proxy_http_version 1.0;
        proxy_set_header Host fake;
        proxy_set_header Connection close;
    }
--- request
GET /fake
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_query eval
"GET /x HTTP/1.0\r\nHost: fake\r\nConnection: close\r\n\r\n"
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nX-Fake: yes\r\n\r\nfrom the fake peer\n"
--- response_headers
X-Fake: yes
Transfer-Encoding: chunked
--- response_body
from the fake peer



=== TEST 13: a peer that accepts and never answers (tcp_no_close)
--- config
    location = /hang {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        proxy_read_timeout 200ms;
    }
--- request
GET /hang
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_reply:
--- tcp_no_close
--- error_code: 504
--- error_log
upstream timed out
--- no_error_log
[alert]



=== TEST 14: client timeout is not a failure with abort
--- config
    location = /slow {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        proxy_read_timeout 1s;
    }
--- request
GET /slow
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_reply:
--- tcp_no_close
--- timeout: 300ms
--- abort
--- error_code:
--- no_error_log
[alert]



=== TEST 15: error_log lines: a refused upstream
--- config
    location = /refused {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- request
GET /refused
--- error_code: 502
--- error_log
connect() failed (111: Connection refused)
while connecting to upstream
--- no_error_log
[alert]
[crit]



=== TEST 16: error_log / no_error_log eval: regex and array
--- config
    location /missing/ {
        root html;
    }
--- request
GET /missing/nope.txt
--- error_code: 404
--- error_log eval
[qr{open\(\) "[^"]+/nope\.txt" failed \(2: No such file or directory\)},
 "[error]"]
--- no_error_log eval
qr/\[(?:emerg|alert)\]/



=== TEST 17: grep_error_log / grep_error_log_out (env expanded)
--- config
    location /missing/ {
        root html;
    }
--- request
GET /missing/nope.txt
--- error_code: 404
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out
open() "$TEST_NGINX_SERVER_ROOT/html/missing/nope.txt" failed
--- error_log
No such file or directory



=== TEST 18: access_log / no_access_log with a custom log_format
--- http_config
    log_format gw '$request_method $uri $status tag=$http_x_tag';
--- config
    location = /logged {
        access_log logs/access.log gw;
        return 204;
    }
--- request
GET /logged
--- more_headers
X-Tag: tagged
--- error_code: 204
--- access_log
GET /logged 204 tag=tagged
--- no_access_log eval
[qr/^POST/, "GET /logged 200"]



=== TEST 19: user_files (env expanded), init
--- config
    location = /x {
        return 404;
    }
--- user_files
>>> hello.txt
port $TEST_NGINX_SERVER_PORT
>>> sub/dir/deep.txt
deep
--- init
open my $fh, '>', "$ENV{TEST_NGINX_SERVER_ROOT}/html/init.txt" or die $!;
print $fh "from init\n";
close $fh;
--- request eval
["GET /hello.txt", "GET /sub/dir/deep.txt", "GET /init.txt"]
--- response_body eval
['port $TEST_NGINX_SERVER_PORT
', "deep\n", "from init\n"]



=== TEST 20: main_config, http_config, $TEST_NGINX_RAND_PORT_N everywhere
--- main_config
    worker_rlimit_nofile 1024;
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        location / {
            return 200 "backend on $server_port\n";
        }
    }
--- config
    location = /via {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/;
    }
--- request
GET /via
--- response_body
backend on $TEST_NGINX_RAND_PORT_3



=== TEST 21: log_level section, wait, no_check_leak
--- log_level: warn
--- config
    location = /t {
        return 200 "quiet\n";
    }
--- request
GET /t
--- wait: 0.05
--- no_check_leak
--- response_body
quiet
--- no_error_log
[debug]
[info]



=== TEST 22: must_die: unknown directive
--- config
    location = /t {
        gw_no_such_directive on;
    }
--- must_die
--- error_log
unknown directive "gw_no_such_directive"



=== TEST 23: must_die with an exit code
--- config
    location = /t {
        return a b c;
    }
--- must_die: 1
--- error_log eval
qr/invalid number of arguments in "return" directive/



=== TEST 24: $ServerPort in expected header values
--- config
    location = /r {
        return 301 /elsewhere;
    }
--- request
GET /r
--- error_code: 301
--- response_headers
Location: http://localhost:$ServerPort/elsewhere



=== TEST 25: more_headers per request
--- config
    location = /h {
        return 200 "$http_x_n\n";
    }
--- request eval
["GET /h", "GET /h"]
--- more_headers eval
["X-N: first", "X-N: second"]
--- response_body eval
["first\n", "second\n"]



=== TEST 26: raw_response_headers_like / _unlike on the raw header block
--- config
    location = /raw {
        add_header X-One 1;
        add_header X-Two 2;
        return 204;
    }
--- request
GET /raw
--- error_code: 204
--- response_body
--- raw_response_headers_like: ^HTTP/1\.1 204 No Content\r\n.*\r\nX-One: 1\r\nX-Two: 2\r\n
--- raw_response_headers_unlike: X-Three
