# skiff — build, test and demo. Everything needs root at run time.
GO      ?= go
BINDIR  ?= bin
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BINARIES := skiff-runtime skiff-shim skiff-shim-idle skiffd skiff

.PHONY: all build install test deps demo bench vet fmt clean proto

all: build

build:
	@mkdir -p $(BINDIR)
	$(foreach b,$(BINARIES),$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/$(b) ./cmd/$(b) &&) true

install: build
	install -m 0755 $(addprefix $(BINDIR)/,$(BINARIES)) $(PREFIX)/bin/

deps:
	./hack/deps.sh

# Sets up this machine and runs a container from the built-in default image
# (a busybox image made from the host's static busybox): starts skiffd if
# none is serving, loads the image, and runs it with `skiff run --rm`.
demo: deps build
	./hack/demo.sh $(BINDIR)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

test: deps build vet
	$(GO) test -count=1 -timeout 20m ./...

bench: deps build
	$(GO) run ./bench/cmd/runtimebench -out BENCHMARKS.md
	$(GO) run ./bench/cmd/enginebench -bin $(BINDIR) -out BENCHMARKS.md

clean:
	rm -rf $(BINDIR)

# Regenerates api/ from its .proto files (needs protoc, protoc-gen-go and
# protoc-gen-go-grpc on PATH; the generated code is committed).
proto:
	protoc --proto_path=api --go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative api/skiff/v1/skiff.proto
