# distbuild's developer entry points. `make test` is the whole CI check.

BUF := go tool -modfile=tools/buf/go.mod buf

.PHONY: all build generate lint-proto check-generated fmt-check vet test test-go seaweedfs demo bench bench-smoke

all: build

## build: compile every binary into ./bin
build:
	go build -o bin/ ./cmd/...

## generate: regenerate the Go code for the wire API from proto/
generate:
	$(BUF) generate

## lint-proto: check the .proto files against buf's STANDARD rules
lint-proto:
	$(BUF) lint

## check-generated: fail when the committed generated code is stale
check-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BUF) generate -o "$$tmp" && \
	diff -r -x '*.proto' "$$tmp/proto/distbuild" proto/distbuild || \
	{ echo "generated code in proto/ is stale: run 'make generate' and commit" >&2; exit 1; }

## fmt-check: fail when any Go file is not gofmt-formatted
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:" >&2; echo "$$out" >&2; exit 1; fi

vet:
	go vet ./...

## seaweedfs: build SeaweedFS, the S3 store the S3 tests run against, once
## per machine (minutes; outside the clone), so that no test waits for it
seaweedfs:
	@scripts/build-seaweedfs >/dev/null || \
	echo "warning: SeaweedFS could not be built; the S3 tests will be skipped" >&2

# The e2e tests build the binaries themselves, which Go's test cache cannot
# see, so they always run afresh.
test-go: seaweedfs
	go test -race $$(go list ./... | grep -v /e2e$$)
	go test -race -count=1 ./e2e/

## test: everything CI checks
test: fmt-check vet lint-proto check-generated test-go bench-smoke

## demo: the local demo (see README)
demo:
	scripts/demo

## bench: every benchmark; writes the results into BENCHMARKS.md
bench:
	scripts/bench

## bench-smoke: every benchmark once, so CI knows they still run
bench-smoke:
	go test -run '^$$' -bench . -benchtime 1x ./definitions/ ./cmd/initiator/ ./controller/ ./artifactcache/ ./artifactcache/store/ ./artifactcache/cached/ ./cmd/trove/ ./scheduler/sim/ ./e2e/ ./worker/step/ ./provenance/
