# socklab: `make run` shows one exchange, `make test` checks what the kernel really did.
CARGO ?= cargo
EXAMPLE ?=
EXAMPLES := 01_socket 02_bind 03_listen 04_connect 05_accept 06_read_write 07_shutdown_close 08_udp

.PHONY: all build run test deps trace examples lint fmt bench clean help

# Where the tests note what they skipped and why; `make test` sums it up at its end.
SKIP_LOG := $(CURDIR)/target/skipped-tests.txt

all: build

help:
	@echo "make run       build and run the demo: one exchange, both roles, one timeline"
	@echo "make test      all tests, then what was skipped and why (tools missing, not root)"
	@echo "make deps      install the optional tools the skipped tests need (or print the command)"
	@echo "make trace     the demo under strace -f, beside the lab's own events"
	@echo "               (make trace EXAMPLE=05_accept for one example)"
	@echo "make examples  run the examples 01..08 one after another"
	@echo "make lint      clippy (warnings are errors), rustfmt --check, cargo doc (warnings are errors)"
	@echo "make bench     benchmarks, built with fat LTO (profile lto: several minutes the first time)"

build:
	$(CARGO) build --release --bins --examples

# Only what it runs, in the dev profile that `make test` builds on too.
run:
	$(CARGO) build --bin socklab
	./target/debug/socklab demo

# Every test binary runs even when one fails; the summary of skips comes last.
test:
	@mkdir -p target && rm -f $(SKIP_LOG)
	$(CARGO) build --bins --examples
	@SOCKLAB_SKIP_LOG=$(SKIP_LOG) $(CARGO) test --all-targets --no-fail-fast; status=$$?; \
	  sh scripts/tools.sh summary $(SKIP_LOG); exit $$status

deps:
	@sh scripts/tools.sh deps

trace: build
	@scripts/trace.sh $(EXAMPLE)

examples: build
	@for e in $(EXAMPLES); do echo "=== $$e"; ./target/release/examples/$$e || exit 1; echo; done

lint:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

fmt:
	$(CARGO) fmt

bench:
	$(CARGO) bench --profile lto

clean:
	$(CARGO) clean
