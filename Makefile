# Front door. `make run` and `make test` install what is missing, build, and go.
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CMAKE_ARGS ?=
# On macOS, Homebrew's LibTorch lives with the pytorch formula.
ifeq ($(shell uname -s),Darwin)
CMAKE_ARGS += -DCMAKE_PREFIX_PATH="$(shell brew --prefix 2>/dev/null);$(shell brew --prefix pytorch 2>/dev/null)"
endif

.PHONY: all deps configure build run test bench clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/server/coalesce-server --flagfile=config/server.flags

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

bench: build
	scripts/install-deps.sh --bench
	bench/run.sh

clean:
	rm -rf $(BUILD)
