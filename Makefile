# mailsts developer tasks. See DEVELOPING.md.
GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
FUZZTIME    ?= 30s
TESTFLAGS   ?= -race -shuffle=on -timeout 20m
# e2e: the real-Postfix test (e2e/); it skips, saying why, without root,
# iproute2 or postfix, unless MAILSTS_REQUIRE_E2E=1 (set by .ci/run).
TAGS        ?= e2e

.PHONY: all build test check fuzz bench tools clean

all: check test

build:
	$(GO) build -o bin/mailsts ./cmd/mailsts

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
