# The binaries of these Kubernetes versions are built into the cache
# ($XDG_CACHE_HOME/vmatrix) once per machine, before the tests need them.
VERSIONS ?= 1.35 1.36 1.37
GO ?= go

.PHONY: build pull test demo vet bench deps skew conformance conformance-ci image

# kustomize (helm's dependency, for the in-cluster mode) imports Go's plugin
# package; a cgo binary that links it exports all its symbols to plugins and
# keeps code it could drop. This tag leaves kustomize's plugin loader out:
# vmatrix maps 93 MB instead of 130 MB, and each cluster's supervisor, a
# vmatrix process, has an RSS 11-15 MB smaller.
BUILD_TAGS = kustomize_disable_go_plugin_support

build:
	$(GO) build -tags $(BUILD_TAGS) -o bin/vmatrix ./cmd/vmatrix

pull: build
	bin/vmatrix versions pull $(VERSIONS)

# The in-cluster image of one Kubernetes version, tagged as the chart expects,
# written as an OCI archive without Docker, from the binary cache only (make
# pull fills it). Its vmatrix is built without cgo: kine then uses its pure-Go
# SQLite driver, and the binary is static.
VERSION ?= 1.37
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/static/vmatrix ./cmd/vmatrix
	bin/static/vmatrix image build --version $(VERSION) -o bin/vmatrix-image-$(VERSION).tar

# The database servers the storage backend tests start their own throwaway
# instances of: Debian's postgresql, mariadb-server and etcd-server. Installed
# only when a binary is missing; the tests skip, with one line, without them.
DEPS_PACKAGES = postgresql mariadb-server etcd-server
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)

deps:
	@if command -v etcd >/dev/null && { command -v mariadbd >/dev/null || test -x /usr/sbin/mariadbd; } && \
	   { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
	  echo "deps: $(DEPS_PACKAGES) installed"; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEPS_PACKAGES); \
	else \
	  echo "deps: no apt-get here; install PostgreSQL, MariaDB and etcd for the storage tests" >&2; \
	fi

# go vet ./... leaves out testdata: the suites the CLI tests run live there.
vet:
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./... $(addprefix ./,$(sort $(dir $(wildcard cmd/vmatrix/testdata/*/*.go))))

# The packages' tests, then the ci subset of the conformance suite alone (it
# builds e2e.test of the newest version once, about 11 min cold): beside the
# other packages' tests it once ran past its limit.
test: deps pull vet
	$(GO) test -count=1 -timeout 75m ./...
	$(MAKE) conformance-ci

# The main job: one virtual cluster per version on the embedded host, created in
# parallel, and the go test example suite run against each by vmatrix run.
demo: pull
	bin/vmatrix run --versions $(shell echo $(VERSIONS) | tr ' ' ,) --report-dir demo-report -- $(GO) test -count=1 ./examples/gotest/...
	cat demo-report/report.md

# Every supported virtual minor older than the host, on the newest host.
# Slow and optional: it builds the binaries of 1.31-1.34 besides make test's.
# The Go module proxy here lists k8s.io/kubernetes 1.31.0, 1.31.14, 1.32.2
# and 1.32.13 only, and refuses some staging modules of 1.31.14 and of both
# 1.32 releases (k8s.io/kube-scheduler v0.31.14, k8s.io/endpointslice
# v0.32.13; v0.32.2 is not listed): 1.31 is run as 1.31.0, and 1.32 cannot
# be built here, so make skew fails on it until the proxy serves them.
SKEW_VERSIONS ?= 1.31.0 1.32 1.33 1.34
skew: pull
	bin/vmatrix versions pull $(SKEW_VERSIONS)
	VMATRIX_SKEW=$(shell echo $(SKEW_VERSIONS) | tr ' ' ,) $(GO) test -count=1 -timeout 30m -run TestVersionSkew -v ./framework/

bench: pull
	$(GO) run ./cmd/vmatrix-bench -out bench/results.json

# The upstream conformance suite on every version, into docs/conformance.md.
# Slow and optional: it builds each version's e2e.test (about 11 min cold on
# two cores) and runs all its [Conformance] specs, one version after another.
conformance: pull
	bin/vmatrix versions pull --e2e $(VERSIONS)
	bin/vmatrix conformance --versions $(shell echo $(VERSIONS) | tr ' ' ,) --out docs/conformance.md --report-dir conformance-report

# The fixed ci subset of the conformance suite on the newest version, alone.
conformance-ci: build
	bin/vmatrix versions pull --e2e $(lastword $(VERSIONS))
	VMATRIX_CONFORMANCE_SUBSET=1 $(GO) test -count=1 -timeout 30m -run TestConformanceSubset -v ./cmd/vmatrix/
