SWIFT ?= swift
TEST_FLAGS ?=

.PHONY: all build release test demo bench bootstrap clean training-deps training-test parity-shipped

all: build

bootstrap:
	@ops/bootstrap.sh

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

test:
	@PLATESEG_WITH_BROWSER=1 ops/bootstrap.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build $(TEST_FLAGS)

demo: release
	@demo/run.sh

bench: release
	.build/release/plateseg-bench queue

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
