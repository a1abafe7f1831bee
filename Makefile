# mailmoat — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
ADVISORY_DB ?= ../shared/advisory-db
FUZZ_SECONDS ?= 60
N ?= 20000

.PHONY: all build release static test lint unit demo test-large bench deps fetch deny vet supply-chain fuzz fmt clean

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
static:
	$(CARGO) build --release --target $(MUSL_TARGET)
	@ldd target/$(MUSL_TARGET)/release/mailmoat 2>&1 | grep -q "statically linked\|not a dynamic executable" \
		|| (echo "not static:"; ldd target/$(MUSL_TARGET)/release/mailmoat; exit 1)
	@ls -l target/$(MUSL_TARGET)/release/mailmoat

## gnu and musl release binaries with SHA-256 checksums in dist/.
release: build static
	mkdir -p dist
	cp target/release/mailmoat dist/mailmoat-x86_64-linux-gnu
	cp target/$(MUSL_TARGET)/release/mailmoat dist/mailmoat-x86_64-linux-musl
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

## Each fuzz target for FUZZ_SECONDS (cargo-fuzz on nightly; seeds from tests/corpus).
fuzz:
	mkdir -p fuzz/corpus/content_render fuzz/corpus/content_html
	cp tests/corpus/*.eml tests/corpus/benign/*.eml fuzz/corpus/content_render/ 2>/dev/null || true
	cd fuzz && for t in $$(ls fuzz_targets | sed 's/\.rs$$//'); do \
		$(CARGO) +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=262144 || exit 1; \
	done

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
