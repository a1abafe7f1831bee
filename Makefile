# mailmoat — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
ADVISORY_DB ?= ../shared/advisory-db
FUZZ_SECONDS ?= 60
N ?= 20000

.PHONY: all build release static test lint unit demo test-large bench deps deny vet supply-chain fuzz fmt clean

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

## Dependency report: unique crates in the normal+build graph and lines of dependency code.
deps:
	@echo "unique crates (normal + build, this platform):"
	@$(CARGO) tree --prefix none -e normal,build --target x86_64-unknown-linux-gnu | sed 's/ (.*//;s/ (\*)//' | sort -u | grep -v '^mailmoat ' | wc -l
	@echo "unique crates (normal + build, musl static build):"
	@$(CARGO) tree --prefix none -e normal,build --target $(MUSL_TARGET) | sed 's/ (.*//;s/ (\*)//' | sort -u | grep -v '^mailmoat ' | wc -l

## Licenses, bans, sources, and advisories checked offline against $(ADVISORY_DB).
deny:
	mkdir -p target/advisory-dbs
	rm -rf target/advisory-dbs/advisory-db-3157b0e258782691
	cp -r $(ADVISORY_DB) target/advisory-dbs/advisory-db-3157b0e258782691
	$(CARGO) deny --offline check

## cargo-vet against the store in audit/, offline.
vet:
	$(CARGO) vet --locked

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
