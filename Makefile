# mailmoat — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
ADVISORY_DB ?= ../shared/advisory-db
FUZZ_SECONDS ?= 60
N ?= 20000

.PHONY: all build release static tls-check test lint unit demo test-large bench deps fetch deny vet supply-chain fuzz fmt clean

all: build

build:
	$(CARGO) build --release

## The whole test suite: lints, unit tests, protocol tests, and tests against a real Dovecot.
test: lint
	$(CARGO) test --lib --bins --tests

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## Unit tests only (no servers).
unit:
	$(CARGO) test --lib

## Starts a throwaway Dovecot with sample mail (hostile messages included), runs `mailmoat check`
## and a short scripted MCP session, and shows the results.
demo:
	$(CARGO) build --release
	$(CARGO) run --release --example demo

## Opt-in: search and page a 100,000-message folder.
test-large:
	MAILMOAT_LARGE=100000 $(CARGO) test --release --test live_tools -- --ignored --nocapture large_
	$(CARGO) test --release --test imap_live -- --ignored --nocapture search_100k_messages

## A static binary (musl, vendored OpenSSL). Needs musl-tools and the musl target (rustup target add).
## Built with the `static` profile (Cargo.toml: release at opt-level "s"). openssl-src compiles
## OpenSSL at -O2 whatever the profile; cc appends STATIC_CFLAGS to that: -Os, and no unwind tables
## (no panic unwinds through OpenSSL: the openssl crate's callbacks are extern "C", where an
## unwind aborts anyway). OPENSSL_SRC_PERL runs OpenSSL's ./Configure with OPENSSL_NO added:
## protocols and algorithms a TLS 1.2/1.3 mail client never uses (QUIC, DTLS, SRP, CT, post-
## quantum signatures, national and legacy ciphers; ML-KEM key exchange is kept). The link packs
## relative relocations (DT_RELR, which musl's static-pie start code applies; GNU ld 2.38 or newer):
## the binary stays position independent at a fraction of the relocation table.
## OpenSSL is rebuilt only when its build directory is new: after changing STATIC_CFLAGS or
## OPENSSL_NO, `rm -rf $(TARGET_DIR)/$(MUSL_TARGET)/static/build/openssl-sys-*` first.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
STATIC_BIN := $(TARGET_DIR)/$(MUSL_TARGET)/static/mailmoat
STATIC_CFLAGS := -Os -fno-asynchronous-unwind-tables -fno-unwind-tables
OPENSSL_NO := no-quic no-dtls no-srtp no-srp no-ct no-cms no-ts no-cmp no-ml-dsa no-slh-dsa no-aria no-sm2 no-sm3 \
	no-sm4 no-bf no-cast no-rc2 no-rc4 no-md4 no-mdc2 no-whirlpool no-rmd160 no-siv no-ocb no-gost no-ec2m
static: $(TARGET_DIR)/openssl-configure-perl
	CFLAGS_x86_64_unknown_linux_musl="$(STATIC_CFLAGS)" OPENSSL_SRC_PERL="$(abspath $<)" \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs" \
		$(CARGO) build --locked --profile static --target $(MUSL_TARGET)
	@ldd $(STATIC_BIN) 2>&1 | grep -q "statically linked\|not a dynamic executable" \
		|| (echo "not static:"; ldd $(STATIC_BIN); exit 1)
	@ls -l $(STATIC_BIN)

$(TARGET_DIR)/openssl-configure-perl: Makefile
	@mkdir -p $(@D)
	@printf '#!/bin/sh\n# Written by make static: perl for openssl-src, with options added to ./Configure.\n%s\n%s\n' \
		'[ "$$1" = ./Configure ] && exec perl "$$@" $(OPENSSL_NO)' 'exec perl "$$@"' > $@
	@chmod +x $@

## Certificate verification of the static binary (after make static): with ca_file, with the CA in
## no store (must fail), through SSL_CERT_FILE, and through Debian's host store (mount namespace).
tls-check:
	$(CARGO) build --release --example tls_check
	MAILMOAT_BIN=$(abspath $(STATIC_BIN)) $(TARGET_DIR)/release/examples/tls_check

## gnu and musl release binaries with SHA-256 checksums in dist/.
release: build static
	mkdir -p dist
	cp $(TARGET_DIR)/release/mailmoat dist/mailmoat-x86_64-linux-gnu
	cp $(STATIC_BIN) dist/mailmoat-x86_64-linux-musl
	cd dist && sha256sum mailmoat-x86_64-linux-gnu mailmoat-x86_64-linux-musl > SHA256SUMS && cat SHA256SUMS

## Benchmarks (not timed tests): sanitizer throughput, and mailmoat against raw IMAP on N messages.
bench:
	$(CARGO) build --release
	$(CARGO) run --release --example bench_sanitizer
	MAILMOAT_BENCH_N=$(N) $(CARGO) run --release --example bench

## Dependency report (offline, a few seconds): unique crates in the normal + build graph and the
## lines of Rust in each one's registry source (every .rs file the published crate ships), with
## totals; for the static build, the extra crates and the C source of the vendored OpenSSL.
CARGO_HOME ?= $(HOME)/.cargo
deps:
	@set -e; \
	list() { $(CARGO) tree --offline --locked --prefix none -e normal,build --target $$1 --format '{p}' \
		| sed 's/ (.*//' | sort -u | grep -v '^mailmoat '; }; \
	src() { ls -d $(CARGO_HOME)/registry/src/*/"$$1-$${2#v}" 2>/dev/null | head -n1; }; \
	rs_lines() { find "$$1" -name '*.rs' -type f -print0 | xargs -0 cat | wc -l; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	list x86_64-unknown-linux-gnu > $$tmp/gnu; \
	list $(MUSL_TARGET) > $$tmp/musl; \
	while read -r name ver; do \
		dir=$$(src "$$name" "$$ver"); \
		if [ -z "$$dir" ]; then echo "        ?  $$name $$ver (not in the registry cache: run cargo fetch)"; continue; fi; \
		printf '%9d  %s %s\n' "$$(rs_lines "$$dir")" "$$name" "$$ver"; \
	done < $$tmp/gnu | sort -rn > $$tmp/lines; \
	cat $$tmp/lines; \
	echo "unique crates (normal + build, x86_64-unknown-linux-gnu): $$(wc -l < $$tmp/gnu)"; \
	echo "lines of Rust in them (all .rs files of each crate): $$(awk '$$1 ~ /^[0-9]+$$/ {t += $$1} END {print t + 0}' $$tmp/lines)"; \
	echo "unique crates (normal + build, $(MUSL_TARGET) static build): $$(wc -l < $$tmp/musl) (extra: $$(comm -13 $$tmp/gnu $$tmp/musl | tr '\n' ' '))"; \
	ossl=$$(grep '^openssl-src ' $$tmp/musl || true); \
	if [ -n "$$ossl" ]; then \
		dir=$$(src $$ossl)/openssl; \
		c=$$(find "$$dir" -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 cat | wc -l); \
		asm=$$(find "$$dir" -type f -path '*/asm/*' -name '*.pl' -print0 | xargs -0 cat | wc -l); \
		echo "vendored OpenSSL ($$ossl): $$c lines of C (.c and .h), $$asm lines of perlasm, $$(du -sh "$$dir" | cut -f1) of source"; \
	fi

## Licenses, bans, sources, and advisories checked offline against $(ADVISORY_DB).
## (cargo fetch first: both read the whole lock file, the musl-only crates included, offline.)
fetch:
	$(CARGO) fetch --locked

deny: fetch
	mkdir -p target/advisory-dbs
	rm -rf target/advisory-dbs/advisory-db-3157b0e258782691
	cp -r $(ADVISORY_DB) target/advisory-dbs/advisory-db-3157b0e258782691
	$(CARGO) deny --offline check

## cargo-vet against the store in audit/, offline.
vet: fetch
	$(CARGO) vet --locked --frozen

supply-chain: deny vet

## Each fuzz target for FUZZ_SECONDS (cargo-fuzz on nightly; seeds from tests/corpus and fuzz/seeds).
fuzz:
	cd fuzz && for t in $$(ls fuzz_targets | sed 's/\.rs$$//'); do mkdir -p corpus/$$t; done
	cp tests/corpus/*.eml tests/corpus/benign/*.eml fuzz/corpus/content_render/ 2>/dev/null || true
	for d in fuzz/seeds/*/; do cp "$$d"* fuzz/corpus/$$(basename "$$d")/; done
	cd fuzz && for t in $$(ls fuzz_targets | sed 's/\.rs$$//'); do \
		$(CARGO) +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=262144 || exit 1; \
	done

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
