# The Makefile is the contract: build, test, lint, bench, demo, clean.
GO          ?= go
BIN         := bin/confd
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test lint bench demo clean fuzz fuzz-smoke install

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/confd

# Every test, with the race detector. Integration tests build their own
# binary from the same sources.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

# The fault tests of integration/faults_test.go with their full-length
# outages (30 s without quorum, 60 s with etcd down, 20 s cut off); `make
# test` runs the same tests with short ones. See docs/reliability.md. Add
# -v to GOFLAGS to see the measured times (the "converge:" and "cpu:" lines).
.PHONY: test-faults
test-faults:
	CONFD_LONG_FAULTS=1 $(GO) test -race -count=1 -run 'TestFault' ./integration/

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

# The binary to $(PREFIX)/bin, the systemd unit (examples/systemd) to
# /etc/systemd/system, and the example conf.d/ and templates/ to /etc/confd
# unless /etc/confd exists already. DESTDIR stages it all elsewhere.
PREFIX  ?= /usr/local
DESTDIR ?=

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/confd
	sed 's|/usr/local/bin/confd|$(PREFIX)/bin/confd|' examples/systemd/confd.service > $(DESTDIR)/etc/systemd/system/confd.service
	chmod 0644 $(DESTDIR)/etc/systemd/system/confd.service
	@if [ -e $(DESTDIR)/etc/confd ]; then \
		echo "$(DESTDIR)/etc/confd exists, left as it is"; \
	else \
		install -d $(DESTDIR)/etc/confd/conf.d $(DESTDIR)/etc/confd/templates && \
		install -m 0644 conf.d/* $(DESTDIR)/etc/confd/conf.d/ && \
		install -m 0644 templates/* $(DESTDIR)/etc/confd/templates/; \
	fi

# The fuzz targets, one after another, each for FUZZTIME. Plain `go test`
# (and so `make test`) runs only their seed corpora under testdata/fuzz.
FUZZTIME ?= 10m

# fuzz-one runs target $(1) of package $(2) for $(3). Go 1.26's fuzzing
# coordinator can fail a target with "context deadline exceeded" when
# -fuzztime ends while a worker is busy, having found nothing and written
# no failing input (go.dev/issue/75804, fixed in Go 1.27); that alone is
# reported and not counted as a failure. Any other failure fails.
define fuzz-one
	@out=$$(mktemp); \
	$(GO) test -run '^$$' -fuzz '^$(1)$$' -fuzztime $(3) $(2) >$$out 2>&1; rc=$$?; \
	cat $$out; \
	if [ $$rc -ne 0 ] && grep -q '^    context deadline exceeded$$' $$out && \
	   ! grep -q 'Failing input written' $$out && \
	   [ $$(grep -c '^--- FAIL' $$out) -eq 1 ]; then \
		echo "$(1): the fuzzing coordinator's end-of-time race (go.dev/issue/75804), no finding"; rc=0; \
	fi; \
	rm -f $$out; exit $$rc
endef

define fuzz-each
	$(call fuzz-one,FuzzParse,./pkg/resource/,$(1))
	$(call fuzz-one,FuzzLoadFile,./pkg/config/,$(1))
	$(call fuzz-one,FuzzViewLookups,./pkg/kv/,$(1))
	$(call fuzz-one,FuzzApply,./pkg/kv/,$(1))
	$(call fuzz-one,FuzzMirrorEvents,./pkg/etcd/,$(1))
	$(call fuzz-one,FuzzChunkDecode,./pkg/etcd/,$(1))
	$(call fuzz-one,FuzzFuncs,./pkg/render/,$(1))
	$(call fuzz-one,FuzzFastPath,./pkg/render/,$(1))
endef

fuzz:
	$(call fuzz-each,$(FUZZTIME))

# Every fuzz target for a few seconds: a check that they run.
fuzz-smoke:
	$(call fuzz-each,10s)
