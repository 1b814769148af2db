# pg_infer root Makefile: `make` builds everything into build/ with CMake (engine, kernels, tools, the
# extension module against PostgreSQL's server headers, the CUDA module when nvcc is found), `make check`
# runs every test, `make install` installs `infer`, the extension and pg_infer_engine. The extension is
# built by CMake rather than PGXS so that one build drives the C module and the C++ engine it talks to.
BUILD_DIR ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)

.PHONY: all check install clean fuzz

all: $(BUILD_DIR)/build.ninja-or-make
	cmake --build $(BUILD_DIR) -j $(JOBS)

$(BUILD_DIR)/build.ninja-or-make: CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	@touch $@

check: all
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

install: all
	cmake --install $(BUILD_DIR)

fuzz:
	cmake -S . -B $(BUILD_DIR)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DPG_INFER_FUZZ=ON -DPG_INFER_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR)-fuzz -j $(JOBS) --target fuzz_gguf

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR)-fuzz
