SWIFT ?= swift
# Tests run serially: several of them start worker processes, and the machine has 2 cores.
TEST_FLAGS ?=

.PHONY: all build release test demo bench bootstrap clean training-deps

all: build

bootstrap:
	@ops/bootstrap.sh

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

test: bootstrap
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build $(TEST_FLAGS)

demo: release
	@demo/run.sh

bench: release
	$(SWIFT) run -c release plateseg-bench all

training-deps:
	python3 -m pip install -q -r training/requirements.txt

clean:
	rm -rf .build out
