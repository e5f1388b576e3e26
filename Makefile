# tokengate: common tasks. `make test` is what CI runs.

.PHONY: run test build bench bench-load fuzz

# Run the gateway on Caddyfile.example (embedded store, demo upstream).
run:
	go run ./cmd/tokengate run --config Caddyfile.example --adapter caddyfile

# Run the whole test suite (installs redis-server, redis-sentinel,
# chromium, fonts-dejavu-core, python3-jwt and python3-cryptography if
# missing); page screenshots go to tests/screenshots/.
test:
	./scripts/test.sh

# Build the binary into ./tokengate.
build:
	go build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null || echo devel)" -o tokengate ./cmd/tokengate

# Hot-path micro-benchmarks.
bench:
	go test -run '^$$' -bench . -benchmem ./caddymodule ./internal/...

# The load harness: every token kind against bare reverse_proxy and
# forward_auth, on both stores (installs wrk and redis-server if missing).
bench-load:
	go run ./tests/load

# Every fuzz target, one after another, FUZZTIME each (default 20s); their
# seed corpora also run in `make test`. FUZZTIME=2m make fuzz for longer.
FUZZTIME ?= 20s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh
