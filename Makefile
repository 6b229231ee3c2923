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

.PHONY: all build man deb test check fuzz bench tools clean curated-roots

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

# The curated root set (internal/trustroots): curated.list selects roots of a
# ca-certificates directory; CA_BUNDLE= points at another copy of it.
CA_BUNDLE ?= /usr/share/ca-certificates/mozilla
curated-roots:
	$(GO) run ./internal/trustroots/gen -bundle $(CA_BUNDLE) \
		-source "$$(dpkg-query -W -f='Debian ca-certificates $${Version}' ca-certificates 2>/dev/null || echo 'ca-certificates') ($(CA_BUNDLE))"

# The Debian package, built offline with nfpm (a go tool of this module):
# $(DEBDIR)/mailsts_$(DEBVERSION)_$(DEBARCH).deb. The version comes from git
# describe (v1.2.0 -> 1.2.0, v1.2.0-3-gabc -> 1.2.0+3.gabc, untagged ->
# 0.0.0~git<hash>); override with DEBVERSION=. See docs/packaging.md.
DEBDIR      ?= dist
DEBARCH     ?= $(shell $(GO) env GOARCH)
DEBVERSION  ?= $(shell echo '$(VERSION)' | sed -E -e 's/^v//' -e 's/^([^0-9])/0.0.0~git\1/' -e 's/-/+/' -e 's/-/./g')
DEBBUILD     = $(DEBDIR)/build
deb:
	@echo "building mailsts $(DEBVERSION) for $(DEBARCH) (a first build compiles all dependencies and nfpm: several minutes)"
	rm -rf $(DEBBUILD) && mkdir -p $(DEBBUILD)
	CGO_ENABLED=0 GOARCH=$(DEBARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEBBUILD)/mailsts ./cmd/mailsts
	$(GO) run ./cmd/mailsts man $(DEBBUILD)
	gzip -9n $(DEBBUILD)/*.[15]
	$(GO) run ./cmd/mailsts completion bash > $(DEBBUILD)/mailsts.bash
	$(GO) run ./cmd/mailsts completion zsh > $(DEBBUILD)/_mailsts
	$(GO) run ./cmd/mailsts completion fish > $(DEBBUILD)/mailsts.fish
	# The package's units: /usr/bin, and the static user the package creates
	# (contrib/ has the DynamicUser units for installs by hand).
	for u in policyd serve tlsrpt-collect; do \
	  sed -e 's|/usr/local/bin/mailsts|/usr/bin/mailsts|' \
	      -e 's|^DynamicUser=yes|User=mailsts\nGroup=mailsts|' \
	      -e 's|^# Install: .*|# Installed by the mailsts Debian package.|' -e '/^#          /d' \
	      contrib/mailsts-$$u.service > $(DEBBUILD)/mailsts-$$u.service; done
	sed -e 's|@VERSION@|$(DEBVERSION)|' -e 's|@ARCH@|$(DEBARCH)|' -e 's|@BUILD@|$(DEBBUILD)|' \
	  packaging/nfpm.yaml > $(DEBBUILD)/nfpm.yaml
	$(GO) tool nfpm package --config $(DEBBUILD)/nfpm.yaml --packager deb --target $(DEBDIR)/
	@ls $(DEBDIR)/*.deb

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
	rm -rf bin dist
