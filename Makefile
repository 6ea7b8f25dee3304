# PageState: `make demo` and `make test` on a fresh Debian machine.
SWIFT ?= swift
SYSTEM_PACKAGES := liburing-dev libseccomp-dev
BENCHMARK_PACKAGES := liblmdb-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps benchmark-deps build test demo benchmarks benchmarks-build

# Installs the C libraries PageState (deps) or the benchmarks (benchmark-deps: LMDB) link when they are missing
# (refreshing the package index only if needed).
deps: PACKAGES := $(SYSTEM_PACKAGES)
benchmark-deps: PACKAGES := $(BENCHMARK_PACKAGES)
deps benchmark-deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get install -y $$missing || { $(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing; }; \
	fi

build: deps
	$(SWIFT) build

# The test suite, plus a compile check of the benchmark package so it cannot rot.
test: deps benchmarks-build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# What this machine supports, the PageDelta measurements, then guests run sandboxed vs in-process.
demo: deps
	$(SWIFT) build -c release --product pagestate
	$(SWIFT) build -c release --product pagestate-worker
	.build/release/pagestate doctor
	.build/release/pagestate bench delta
	.build/release/pagestate bench sandbox

benchmarks-build: deps benchmark-deps
	cd Benchmarks && RUNTIME_INTERPOSER_LOCAL_PATH=$$PWD/LocalPackages/swift-runtime-interposer $(SWIFT) build -c release

# package-benchmark microbenchmarks (see Benchmarks/README.md).
benchmarks: deps benchmark-deps
	Benchmarks/run.sh
