# The Makefile is the contract: build, test, lint, bench, demo, clean.
GO          ?= go
BIN         := bin/confd
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test lint bench demo clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/confd

# Every test, with the race detector. Integration tests build their own
# binary from the same sources.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Micro-benchmarks of the packages, then the end-to-end figures of the
# built binary against a real etcd (integration/bench; -h for its flags).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
	$(GO) run ./integration/bench -confd $(BIN)

demo: build
	$(GO) run ./examples/demo -confd $(BIN)

clean:
	rm -rf bin
