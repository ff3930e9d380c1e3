# Copyright (C) nginx-gw authors
# Compat runner only: an upstream global the runner does not implement dies.
use Test::Nginx::Socket 'no_plan';

use_hup();
run_tests();

__DATA__

=== TEST 1: never run
--- config
--- request
GET /
