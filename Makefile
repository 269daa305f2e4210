# The binaries of these Kubernetes versions are built into the cache
# ($XDG_CACHE_HOME/vmatrix) once per machine, before the tests need them.
VERSIONS ?= 1.35 1.36 1.37
GO ?= go

.PHONY: build pull test demo vet bench

build:
	$(GO) build -o bin/vmatrix ./cmd/vmatrix

pull: build
	bin/vmatrix versions pull $(VERSIONS)

vet:
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

test: pull vet
	$(GO) test -count=1 -timeout 75m ./...

demo: pull
	./examples/demo.sh $(VERSIONS)

bench: pull
	$(GO) run ./cmd/vmatrix-bench -out bench/results.json
