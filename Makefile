SWIFT ?= swift
TEST_FLAGS ?=

.PHONY: all build release test cluster-test demo bench chaos fuzz fuzz-build bootstrap clean training-deps training-test parity-shipped

all: build

bootstrap:
	@ops/bootstrap.sh

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

# The suite runs against SQLite and against a throwaway PostgreSQL server that the script starts
# and removes (ops/postgres/test-server.sh); then the plate across hosts and under Slurm.
test:
	@PLATESEG_WITH_BROWSER=1 ops/bootstrap.sh
	$(SWIFT) build --build-tests
	ops/postgres/test-server.sh $(SWIFT) test --skip-build $(TEST_FLAGS)
	@$(MAKE) --no-print-directory cluster-test

# Many machines on this one (root): network namespaces (ops/cluster/test.sh) and a one-node Slurm
# (ops/slurm/test.sh), each against its own PostgreSQL; uses the debug build.
cluster-test:
	ops/cluster/test.sh
	ops/slurm/test.sh

demo: release
	@demo/run.sh

# SQLite and PostgreSQL side by side (a throwaway server).
bench: release
	ops/postgres/test-server.sh sh -c 'PLATESEG_BENCH_POSTGRES=$$PLATESEG_TEST_POSTGRES .build/release/plateseg-bench queue'

# A plate of 36 real fields with the shipped networks under 100 random worker SIGKILLs, coordinator
# kills and two PostgreSQL crashes, compared with an undisturbed run (docs/reliability.md).
chaos: release
	ops/postgres/test-server.sh .build/release/plateseg-bench chaos

# libFuzzer and AddressSanitizer on every parser of outside bytes, FUZZ_SECONDS each, from the
# committed seed corpus (Fuzz/corpus); a crash is written to Fuzz/found (ops/fuzz/run.sh). SwiftPM's
# --sanitize fuzzer links libFuzzer but does not instrument for coverage: -sanitize=fuzzer does;
# libFuzzer's own main runs, so the replay main of plateseg-fuzz is renamed away.
FUZZ_SECONDS ?= 60
fuzz-build: bootstrap
	$(SWIFT) build --build-path .build/fuzz --sanitize fuzzer --sanitize address --product plateseg-fuzz -Xswiftc -sanitize=fuzzer,address \
	  -Xswiftc -Xfrontend -Xswiftc -entry-point-function-name -Xswiftc -Xfrontend -Xswiftc plateseg_fuzz_replay
fuzz: fuzz-build
	ops/fuzz/run.sh $(FUZZ_SECONDS)

training-deps:
	python3 -m pip install -q -r training/requirements.txt

# The Python side's own tests (needs training-deps; not part of `make test`, which needs no PyTorch).
training-test:
	cd training && PYTHONPATH=. python3 -m pytest -q tests

# The engine against PyTorch on the shipped weights and real validation images (needs
# training-deps and ../shared/data; not part of `make test`).
parity-shipped:
	python3 training/parity/shipped.py
	PLATESEG_PARITY_DIR=out/parity swift test --filter ShippedParity

clean:
	rm -rf .build out
