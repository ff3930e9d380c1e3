# Copyright (C) nginx-gw authors
# Every block carries exactly ONE wrong expectation: a runner must report
# exactly one failing test per block (t/runner.t checks which).  Upstream
# Test::Nginx reports the same failures.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: wrong status
--- config
    location = /t {
        add_header X-Gw one;
        return 200 "hello\n";
    }
--- request
GET /t
--- error_code: 404



=== TEST 2: wrong body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
goodbye



=== TEST 3: wrong header value
--- config
    location = /t {
        add_header X-Gw one;
        return 200 "hello\n";
    }
--- request
GET /t
--- response_headers
X-Gw: two



=== TEST 4: header present that must be absent
--- config
    location = /t {
        add_header X-Gw one;
        return 200 "hello\n";
    }
--- request
GET /t
--- response_headers
!X-Gw



=== TEST 5: response_headers_like mismatch
--- config
    location = /t {
        add_header X-Gw one;
        return 200 "hello\n";
    }
--- request
GET /t
--- response_headers_like
X-Gw: \d+



=== TEST 6: response_body_like mismatch
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body_like: ^bye



=== TEST 7: response_body_unlike matches
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body_unlike: hel+o



=== TEST 8: error_log pattern never logged
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- error_log
this line never appears



=== TEST 9: no_error_log pattern logged
--- config
    location /missing/ {
        root html;
    }
--- request
GET /missing/nope.txt
--- error_code: 404
--- no_error_log
[error]



=== TEST 10: access_log pattern missing
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- access_log
never logged



=== TEST 11: no_access_log pattern present
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- no_access_log
GET /t



=== TEST 12: grep_error_log_out mismatch
--- config
    location /missing/ {
        root html;
    }
--- request
GET /missing/nope.txt
--- error_code: 404
--- grep_error_log chop
No such file or directory
--- grep_error_log_out
Permission denied



=== TEST 13: must_die, but nginx starts
--- config
    location = /t {
        return 200;
    }
--- must_die



=== TEST 14: client timeout without abort
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
--- error_code:



=== TEST 15: tcp_query mismatch
--- config
    location = /fake {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/x;
    }
--- request
GET /fake
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_query
POST /y
--- tcp_reply eval
"HTTP/1.0 200 OK\r\n\r\nfake\n"
--- response_body
fake



=== TEST 16: pipelined: second body wrong
--- config
    location = /p {
        return 200 "$request_uri\n";
    }
--- pipelined_requests eval
["GET /p?1", "GET /p?2"]
--- response_body eval
["/p?1\n", "/p?3\n"]



=== TEST 17: request array: second status wrong
--- config
    location = /a {
        return 200 "a\n";
    }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 200]
--- response_body_like eval
["a", "404"]



=== TEST 18: must_die with the wrong exit code
--- config
    location = /t {
        return a b c;
    }
--- must_die: 2
