# ICN node: build, test and development targets. `make` alone builds.

.DEFAULT_GOAL := build

GO       ?= go
BIN      := bin
PKG      := github.com/intercooperative/icn
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS  := -X $(PKG)/internal/version.Version=$(VERSION)
FUZZTIME ?= 10s

# staticcheck is installed into GOPATH/bin on first use of `make lint`.
STATICCHECK_VERSION ?= v0.8.2
GOBIN_DIR   := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN_DIR)/staticcheck

.PHONY: build test run devnet lint fuzz clean distclean staticcheck dashboards bench

## build: write bin/icnd and bin/icnctl, stamped with VERSION
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/icnd ./cmd/icnctl

## test: every test, with the race detector (the e2e tests build their own binaries)
test:
	$(GO) test -race -count=1 -timeout 30m ./...

## run: one local node on the embedded dev config (data in .icn-dev/, public dev passphrase)
run: build
	$(BIN)/icnd --dev

## devnet: three local nodes on loopback, connected to each other; Ctrl-C stops them
devnet: build
	scripts/devnet.sh

## lint: go vet and staticcheck
lint: staticcheck
	$(GO) vet ./...
	$(STATICCHECK) ./...

staticcheck:
	@test -x $(STATICCHECK) || { \
		echo "installing staticcheck $(STATICCHECK_VERSION) into $(GOBIN_DIR)"; \
		GOBIN=$(GOBIN_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	}

## bench: the proof-at-scale suite (simulation, emulated WAN, chaos) at full size
## and the performance benchmarks; figures in bench-results/ (docs/benchmarks.md)
bench:
	scripts/bench.sh

## fuzz: run every fuzz target for FUZZTIME each (default 10s)
fuzz:
	@set -e; \
	$(GO) list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do \
		grep -qs '^func Fuzz' "$$dir"/*_test.go || continue; \
		for name in $$($(GO) test -list '^Fuzz' "$$pkg" | grep '^Fuzz'); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) "$$pkg"; \
		done; \
	done

## dashboards: copy go-libp2p's Grafana dashboards (the version in go.mod) into
## configs/grafana/dashboards/libp2p, hard-coded datasource UIDs fixed up
dashboards:
	$(GO) mod download github.com/libp2p/go-libp2p
	$(GO) run ./internal/dashboards/cmd/libp2p-dashboards \
		-src "$$($(GO) list -m -f '{{.Dir}}' github.com/libp2p/go-libp2p)/dashboards" \
		-dst configs/grafana/dashboards/libp2p

## clean: remove build output
clean:
	rm -rf $(BIN)

## distclean: also remove the dev and devnet data dirs (their identities too)
distclean: clean
	rm -rf .icn-dev .devnet
