# Copyright (C) nginx-gw authors
# nginx-gw: build the modules, run the suites, the demo and the benchmarks.
#
#   make                      build every module into build/ (Debian nginx-dev)
#   make NGINX_SRC=/path      build against a full nginx source tree instead
#   make test                 Test::Nginx suites against a private redis-server
#   make run                  the demo gateway on 127.0.0.1:8080 (metrics :8081)
#   make run REPLICAS=3       three gateway replicas behind a balancer on :8080
#   make bench                side-by-side benchmark, ratios to the bare proxy
#   make faults               fault scenarios under load, PASS/FAIL on bounds
#   make bench-peers          nginx-gw against OpenResty-style and Flask peers
#   make fuzz                 libFuzzer runs of the untrusted-input parsers
#   make fuzz-replay          replay the committed corpora (part of make test)
#   make w3c-trace W3C_TRACE_CONTEXT=/path   the W3C Trace Context test suite
#   make script               regenerate ngx_http_gw_ratelimit_lua.h
#   make test-valgrind        the suite with nginx under valgrind
#   make deb                  Debian packages into build/deb/, lintian-checked
#   make package-test         the .debs in a debootstrap chroot and in a
#                             container image (podman), minutes
#   make status-page          regenerate the gw_metrics status page's C
#   make clean

SHELL := /bin/bash
TOP := $(CURDIR)
BUILD := $(TOP)/build

# Debian's nginx-dev ships headers and the build system, not the sources:
# there we configure with the packaged nginx's flags and build modules only.
DEBIAN_SRC := /usr/share/nginx/src
NGINX_SRC ?=

ifeq ($(NGINX_SRC),)
NGX_TREE := $(BUILD)/nginx
NGINX_BIN ?= /usr/sbin/nginx
NGX_TARGET := modules
else
NGX_TREE := $(abspath $(NGINX_SRC))
NGINX_BIN ?= $(NGX_TREE)/objs/nginx
NGX_TARGET := build
# extra configure flags for a full tree (the modules the suites use)
NGX_CONFIGURE_FLAGS ?= --with-compat --with-debug --with-threads \
    --with-http_ssl_module --with-http_auth_request_module \
    --with-http_stub_status_module --with-http_realip_module \
    --with-http_dav_module
endif

# Debian's hardening flags (dpkg-buildflags with hardening=+all: -O2,
# _FORTIFY_SOURCE=2, -fstack-protector-strong, format checks, relro and
# BIND_NOW): the flags the .debs are built with (make deb, debian/rules),
# plus -fPIC as Debian's nginx_mod build system adds.  A change of flags
# configures the tree again; a --with-cc-opt in NGX_EXTRA_FLAGS (make
# test-asan) replaces them.
DEB_BUILD_MAINT_OPTIONS ?= hardening=+all
buildflag = $(shell DEB_BUILD_MAINT_OPTIONS="$(DEB_BUILD_MAINT_OPTIONS)" \
    dpkg-buildflags --get $(1) 2>/dev/null)
GW_CC_OPT ?= $(call buildflag,CFLAGS) $(call buildflag,CPPFLAGS) -fPIC
GW_LD_OPT ?= $(call buildflag,LDFLAGS) -fPIC
GW_FLAGS := $(strip $(GW_CC_OPT) | $(GW_LD_OPT) | $(NGX_EXTRA_FLAGS))
ifneq ($(GW_FLAGS),$(file <$(BUILD)/.buildflags))
$(shell mkdir -p $(BUILD))
$(file >$(BUILD)/.buildflags,$(GW_FLAGS))
endif

MODULE_SRCS := $(wildcard $(TOP)/ngx_http_gw_*.c $(TOP)/ngx_http_gw_*.h)
MODULES := $(patsubst $(TOP)/%.c,%,$(wildcard $(TOP)/ngx_http_gw_*_module.c))
SO_FILES := $(addprefix $(BUILD)/,$(addsuffix .so,$(MODULES)))

export NGINX_BIN BUILD

.PHONY: all modules deps build-deps test test-valgrind test-asan run bench \
    bench-peers bench-peers-profile fuzz fuzz-build clean deb package-test \
    status-page w3c-trace script script-check

all: modules

deps:
	@$(TOP)/.ci/deps

modules: $(SO_FILES)

build-deps:
	@$(TOP)/.ci/deps build

$(NGX_TREE)/objs/Makefile: $(TOP)/config $(BUILD)/.buildflags | build-deps
	@mkdir -p $(BUILD)
ifeq ($(NGINX_SRC),)
	@test -f $(DEBIAN_SRC)/conf_flags || { \
	    echo "nginx-dev is missing: run 'make deps'" >&2; exit 1; }
	rm -rf $(NGX_TREE)
	cp -r $(DEBIAN_SRC) $(NGX_TREE)
	cd $(NGX_TREE) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(GW_CC_OPT)" \
	    --with-ld-opt="$(GW_LD_OPT)" $(NGX_EXTRA_FLAGS) \
	    --add-dynamic-module=$(TOP) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }
else
	cd $(NGX_TREE) && $$(test -x configure && echo ./configure \
	    || echo auto/configure) $(NGX_CONFIGURE_FLAGS) \
	    --with-cc-opt="$(GW_CC_OPT)" --with-ld-opt="$(GW_LD_OPT)" \
	    $(NGX_EXTRA_FLAGS) \
	    --add-dynamic-module=$(TOP) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }
endif

$(BUILD)/.built: $(NGX_TREE)/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile $(NGX_TARGET)
	@touch $@

# Copy then rename: a running nginx (make run, a test) maps the old file, and
# overwriting it in place would change the code under its feet.
$(BUILD)/%.so: $(BUILD)/.built
	cp $(NGX_TREE)/objs/$*.so $@.tmp && mv -f $@.tmp $@

# the suites, then (unless TEST_FILES picks suites) every fuzz corpus
test: deps script-check modules
	@$(TOP)/t/run-suite $(TEST_FILES)
ifeq ($(TEST_FILES),)
	@$(MAKE) --no-print-directory fuzz-replay
endif

# gw_ratelimit's Lua script, embedded in C: the generated header is
# committed (builds with --add-dynamic-module never run this Makefile), and
# make test fails when it is not what the script makes
LUA_SCRIPT := $(TOP)/ngx_http_gw_ratelimit_script.lua
LUA_HEADER := $(TOP)/ngx_http_gw_ratelimit_lua.h

script:
	$(TOP)/tools/embed-lua $(LUA_SCRIPT) > $(LUA_HEADER).tmp
	mv -f $(LUA_HEADER).tmp $(LUA_HEADER)

script-check:
	@$(TOP)/tools/embed-lua $(LUA_SCRIPT) | cmp -s - $(LUA_HEADER) || { \
	    echo "$(notdir $(LUA_HEADER)) is stale: run 'make script'" >&2; \
	    exit 1; }

test-valgrind: deps modules
	@$(TOP)/.ci/deps valgrind
	@TEST_NGINX_USE_VALGRIND=1 $(TOP)/t/run-suite $(TEST_FILES)

# the modules built with AddressSanitizer (and UBSan) into build-asan/,
# loaded into the same nginx with the ASan runtime preloaded
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=$(TOP)/build-asan \
	    NGX_EXTRA_FLAGS="--with-cc-opt='-fsanitize=address,undefined \
	    -fno-omit-frame-pointer' --with-ld-opt=-fsanitize=address,undefined" \
	    modules
	@GW_ASAN=$$(gcc -print-file-name=libasan.so) \
	    TEST_NGINX_BUILD_DIR=$(TOP)/build-asan $(TOP)/t/run-suite $(TEST_FILES)

# the W3C Trace Context test suite (w3c/trace-context, test/) through a
# gateway with gw_trace on, Level 2; the suite is not part of this
# repository, so not in CI
w3c-trace: modules
	@$(TOP)/.ci/deps w3c
	@$(TOP)/tools/w3c-trace "$(W3C_TRACE_CONTEXT)"

# the gw_metrics status page: docs/status-page.html into the module
status-page:
	@$(TOP)/docs/status-page.pl $(TOP)/docs/status-page.html \
	    $(TOP)/ngx_http_gw_metrics_page.c

# make run REPLICAS=3: three gateway replicas behind a load balancer.  On a
# terminal the demo runs as a job of its own in the foreground (bash -m), so
# Ctrl-C reaches the demo, which cleans up, and not make, which would report
# an interrupted target.
REPLICAS ?= 1
run: modules
	@$(TOP)/.ci/deps build run
	@export GW_DEMO_REPLICAS=$(REPLICAS); \
	if [ -t 0 ]; then bash -mc '$(TOP)/examples/run-demo; exit $$?'; \
	else $(TOP)/examples/run-demo; fi

bench: modules
	@$(TOP)/.ci/deps build bench
	@$(TOP)/bench/run $(BENCH_ARGS)

# every scenario of faults/ (minutes; FAULTS_ARGS="memory" picks some)
.PHONY: faults
faults: modules
	@$(TOP)/.ci/deps build faults
	@$(TOP)/faults/run $(FAULTS_ARGS)

# all four modules, limit_req, the OpenResty way and the article's Flask
# gateway, Redis shared and pinned apart: bench/results/peers.md and plots
bench-peers: modules
	@$(TOP)/.ci/deps build bench peers
	@$(TOP)/bench/peers/run

# where the gateways' instructions go: callgrind, bench/results/peers-profile.txt
bench-peers-profile: modules
	@$(TOP)/.ci/deps build bench peers valgrind
	@$(TOP)/bench/peers/profile gw-all gw-limit-req openresty

# Fuzzers: fuzz/fuzz_<name>.c calls the parsers of untrusted bytes directly,
# linked with the unit that holds them (FUZZ_UNITS_<harness>) and
# fuzz/ngx_shim.c, the few nginx core functions they use (Debian's nginx-dev
# ships headers only).  Every harness links completely: a parser that starts
# calling nginx glue the shim lacks fails to link, and the shim holds only
# what some harness calls.
FUZZERS := $(patsubst $(TOP)/fuzz/%.c,%,$(wildcard $(TOP)/fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
FUZZ_TIME ?= 60
FUZZ_CC ?= clang
FUZZ_INCS := $(addprefix -I$(NGX_TREE)/,objs src/core src/event \
    src/event/modules src/os/unix src/http src/http/modules src/http/v2)
FUZZ_CFLAGS ?= -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-pie -no-pie
FUZZ_LIBS := -ljansson -lhiredis -lcrypto

FUZZ_UNITS_fuzz_auth := ngx_http_gw_jwt.c
FUZZ_UNITS_fuzz_metrics := ngx_http_gw_metrics_core.c
FUZZ_UNITS_fuzz_ratelimit := ngx_http_gw_redis_reply.c \
    ngx_http_gw_ratelimit_script.c
FUZZ_UNITS_fuzz_trace := ngx_http_gw_trace_context.c
FUZZ_UNITS_fuzz_otlp := ngx_http_gw_otlp.c
FUZZ_UNITS_fuzz_json := ngx_http_gw_json.c

.SECONDEXPANSION:
$(BUILD)/fuzz/%: $(TOP)/fuzz/%.c $(TOP)/fuzz/ngx_shim.c $(MODULE_SRCS) \
    $(NGX_TREE)/objs/Makefile
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_INCS) -I$(TOP) -o $@ \
	    $(TOP)/fuzz/$*.c $(TOP)/fuzz/ngx_shim.c \
	    $(addprefix $(TOP)/,$(FUZZ_UNITS_$*)) $(FUZZ_LIBS)

fuzz-build:
	@$(TOP)/.ci/deps build fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# long runs: make fuzz FUZZ_TIME=600
fuzz: fuzz-build
	@set -e; for f in $(FUZZERS); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$f; \
	    echo "== $$f ($(FUZZ_TIME)s)"; \
	    $(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        $(BUILD)/fuzz/corpus/$$f $(TOP)/fuzz/corpus/$$f; \
	done

# replay every committed corpus under ASan/UBSan (make test runs this)
fuzz-replay: fuzz-build
	@set -e; for f in $(FUZZERS); do \
	    n=$$(ls $(TOP)/fuzz/corpus/$$f | wc -l); \
	    $(BUILD)/fuzz/$$f -runs=0 $(TOP)/fuzz/corpus/$$f \
	        > $(BUILD)/fuzz/$$f.replay.log 2>&1 \
	    || { cat $(BUILD)/fuzz/$$f.replay.log; \
	         echo "fuzz-replay: $$f FAILED" >&2; exit 1; }; \
	    echo "fuzz-replay: $$f: $$n inputs, clean"; \
	done

# Debian packages (debian/, dh-sequence-nginx), then the chroot and image
# tests (packaging/); the debootstrap base is cached in build/cache/
deb: build-deps
	@$(TOP)/.ci/deps build package
	@$(TOP)/packaging/build-deb

package-test: deb
	@$(TOP)/.ci/deps test package
	@$(TOP)/packaging/chroot-test
	@$(TOP)/packaging/image-test

clean:
	rm -rf $(BUILD) $(TOP)/build-asan t/servroot* bench/out faults/out
