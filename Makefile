# mailsts developer tasks. See DEVELOPING.md.
GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
FUZZTIME    ?= 30s
TESTFLAGS   ?= -race -shuffle=on -timeout 20m
# e2e: the real-Postfix test (e2e/); it skips, saying why, without root,
# iproute2 or postfix, unless MAILSTS_REQUIRE_E2E=1 (set by .ci/run).
TAGS        ?= e2e

# Release identity for make build (mailsts version, mailsts_build_info).
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE        ?= $(shell git log -1 --format=%cI 2>/dev/null)
BUILDINFO   := github.com/mailsts/mailsts/internal/buildinfo
LDFLAGS     := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(DATE)

.PHONY: all build man test check fuzz bench tools clean

all: check test

# The first build compiles every dependency (several minutes on a cold
# cache): -v names each package as it is compiled.
build:
	@echo "building bin/mailsts $(VERSION) (a first build compiles all dependencies: several minutes)"
	$(GO) build -v -trimpath -ldflags '$(LDFLAGS)' -o bin/mailsts ./cmd/mailsts

# Regenerates docs/man from the command table and contrib/*.yml
# (a test fails when the checked-in pages are out of date).
man:
	$(GO) run ./cmd/mailsts man docs/man

# The README's test command. Fuzz seed corpora run as part of go test.
test:
	$(GO) test $(TESTFLAGS) -tags '$(TAGS)' ./...

tools:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

check: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	$(STATICCHECK) -tags '$(TAGS)' ./...

# Runs every Fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
