# Thin wrapper over CMake and CTest. `make run` and `make test` install missing Debian packages
# first (scripts/deps.sh), so both work on a fresh Debian 12 machine.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
CONFIG      ?= conf/rtgate.json
PREFIX      ?= /usr/local
BUILD_TYPE  ?= RelWithDebInfo
# CI builds with -Werror; locally warnings stay warnings.
WERROR      ?= $(if $(CI),ON,OFF)
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps deps-test build run test test-unit test-browser test-integration test-asan install format \
        format-check demo-cluster demo-cluster-stop demo-url fuzz clean

all: build

deps:
	@./scripts/deps.sh

deps-test:
	@./scripts/deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DRTGATE_WERROR=$(WERROR) \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

# Also serves the demo pages (docker/demo/): scripts/demo-url.sh prints their URLs with tokens.
run: build
	./$(BUILD)/rtgate --config $(CONFIG) --static-dir docker/demo

demo-url: build
	@./scripts/demo-url.sh

test: deps-test node_modules/.package-lock.json build
	ctest --test-dir $(BUILD) --output-on-failure

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit

# The browser client in headless Chromium (Debian's chromium package).
test-browser: deps-test node_modules/.package-lock.json build
	ctest --test-dir $(BUILD) --output-on-failure -L browser

test-integration: deps-test node_modules/.package-lock.json build
	ctest --test-dir $(BUILD) --output-on-failure -L integration

# The whole suite again with AddressSanitizer and UndefinedBehaviorSanitizer: any report fails.
test-asan: deps-test node_modules/.package-lock.json
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DRTGATE_SANITIZE=ON -DRTGATE_WERROR=$(WERROR)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ctest --test-dir $(BUILD_ASAN) --output-on-failure

# Honours DESTDIR (packaging) and PREFIX.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# libFuzzer harnesses, each for FUZZ_SECONDS (scripts/fuzz.sh says how to reproduce a crash).
FUZZ_SECONDS ?= 60
fuzz: deps-test
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Redis, two rtgate nodes and HAProxy (mode tcp) on loopback: the docker-compose topology
# without containers. http://127.0.0.1:18080 is the balancer.
demo-cluster: build
	./scripts/demo-cluster.sh start

demo-cluster-stop:
	./scripts/demo-cluster.sh stop

format:
	clang-format -i src/*.c src/*.h include/rtgate/*.h tests/unit/*.c tests/tools/*.c tests/fuzz/*.c tests/fuzz/*.h

format-check:
	clang-format --dry-run --Werror src/*.c src/*.h include/rtgate/*.h tests/unit/*.c tests/tools/*.c tests/fuzz/*.c tests/fuzz/*.h

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
