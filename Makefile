# mailmoat — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: all build release test lint unit demo test-large fmt clean

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

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
