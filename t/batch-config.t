# Copyright (C) nginx-gw authors
# ngx_http_gw_batch_module alone: its directives' errors (nginx -t), and a
# batch over plain nginx locations: order, statuses, answers that are not
# JSON or too big for the subrequest buffer, HEAD, methods.  The demo's
# batch (through proxied routes, a deadline, auth) is t/demo-batch.t.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwTest;
use Test::Nginx::Socket 'no_plan';

repeat_each(2);
no_shuffle();

GwTest::use_defaults(modules => ['batch'], request => "GET /batch");

run_tests();

__DATA__

=== TEST 1: answers in the configured order, error entries for the others
--- config
    location = /batch {
        gw_batch first  /a;
        gw_batch second /b?x=1;
        gw_batch gone   /missing;
        gw_batch html   /html;
        gw_batch big    /big;
        gw_batch empty  /empty;
        gw_batch last   /c;
    }
    location = /a { return 200 '{"a":1}  \n'; }
    location = /b { return 200 '[$arg_x, "\u00e9"]'; }
    location = /missing { return 404 '{"error":"no"}'; }
    location = /html { return 200 '<html>ok</html>'; }
    location = /big { subrequest_output_buffer_size 16; return 200 '"0123456789abcdef0123"'; }
    location = /empty { return 204; }
    location = /c { return 200 'true'; }
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body
{"first":{"a":1},"second":[1, "\u00e9"],"gone":{"error":"failed","status":404},"html":{"error":"invalid JSON","status":200},"big":{"error":"failed","status":502},"empty":{"error":"invalid JSON","status":204},"last":true}
--- error_log
gw_batch: "html" answered invalid JSON: invalid value at byte 0
too big subrequest response
--- no_error_log
[alert]
[crit]



=== TEST 2: HEAD: the headers only; other methods: 405
--- config
    location = /batch {
        gw_batch a /a;
    }
    location = /a { return 200 '{}'; }
--- request eval
["HEAD /batch", "POST /batch\nx"]
--- error_code eval
[200, 405]
--- response_headers eval
["Content-Type: application/json\nContent-Length: 9", ""]
--- response_body eval
["", qr/405 Not Allowed/]



=== TEST 3: call names go into the JSON as they are: a closed set of bytes
--- config
    location = /batch { gw_batch "a\"b" /a; }
--- must_die
--- error_log
invalid batch call name "a"b": letters, digits, "_" and "-" only



=== TEST 4: names are unique in a batch
--- config
    location = /batch { gw_batch a /a; gw_batch a /b; }
--- must_die
--- error_log
duplicate batch call name "a"



=== TEST 5: call URIs are fixed local paths
--- config
    location = /batch { gw_batch a http://example.com/; }
--- must_die
--- error_log
invalid batch call URI "http://example.com/": it must start with "/"



=== TEST 6: no variables in call URIs (nothing a client could steer)
--- config
    location = /batch { gw_batch a /users/$arg_id; }
--- must_die
--- error_log
invalid batch call URI "/users/$arg_id": no blanks, control characters, "$" or "#"



=== TEST 7: at most 16 calls
--- config eval
"location = /batch {\n" . CORE::join('', map { "gw_batch c$_ /a;\n" } 1 .. 17) . "}\n"
--- must_die
--- error_log
more than 16 calls in one batch



=== TEST 8: a batch is a content handler of its own
--- config
    location = /batch { proxy_pass http://127.0.0.1:1; gw_batch a /a; }
--- must_die
--- error_log
"gw_batch" directive conflicts with another content handler in this location



=== TEST 9: gw_batch_timeout takes a time
--- config
    gw_batch_timeout soon;
--- must_die
--- error_log
"gw_batch_timeout" directive invalid value
