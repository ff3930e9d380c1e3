# Copyright (C) nginx-gw authors
# Global settings: master_on, workers, no_root_location, log_level, shuffled
# block order, no_long_string.  Passes under t/compat and upstream alike.
use Test::Nginx::Socket;

master_on();
workers(2);
no_root_location();
log_level('info');
no_long_string();
plan tests => repeat_each() * 4 * blocks();

run_tests();

__DATA__

=== TEST 1: our own "location /" (no_root_location), two workers
--- config
    location / {
        return 200 "root of $uri\n";
    }
--- request
GET /anything
--- response_body
root of /anything
--- grep_error_log eval
qr/start worker process(?= \d)/
--- grep_error_log_out
start worker process
start worker process
--- no_error_log
[debug]



=== TEST 2: log_level('info') keeps debug lines out
--- config
    location / {
        return 404;
    }
--- request
GET /x
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
[notice]
--- no_error_log
[debug]
