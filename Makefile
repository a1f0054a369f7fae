# socklab: `make run` shows one exchange, `make test` checks what the kernel really did.
CARGO ?= cargo
EXAMPLE ?=
EXAMPLES := 01_socket 02_bind 03_listen 04_connect 05_accept 06_read_write 07_shutdown_close 08_udp

.PHONY: all build run test trace examples lint fmt bench clean help

all: build

help:
	@echo "make run       build and run the demo: one exchange, both roles, one timeline"
	@echo "make test      all tests (privileged ones skip with a reason when not root)"
	@echo "make trace     the demo under strace -f, beside the lab's own events"
	@echo "               (make trace EXAMPLE=05_accept for one example)"
	@echo "make examples  run the examples 01..08 one after another"
	@echo "make lint      clippy (warnings are errors), rustfmt --check, cargo doc (warnings are errors)"
	@echo "make bench     benchmarks"

build:
	$(CARGO) build --release --bins --examples

run: build
	./target/release/socklab demo

test:
	$(CARGO) build --bins --examples
	$(CARGO) test --all-targets

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
	$(CARGO) bench

clean:
	$(CARGO) clean
