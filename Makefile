# burst's two entry points: `make demo` (set up, then run a sweep on this
# machine) and `make test` (every test). Both work on a fresh machine with Go
# and Python 3; everything else they need, they install under this folder.

GO      ?= go
PYTHON  := .venv/bin/python
BURST   := bin/burst
DEMO    := burst-demo

.PHONY: demo demo-volume build python minio moto sshd check-config test test-python lint bench bench-warm bench-s3 bench-ssh clean

build:
	$(GO) build -o $(BURST) ./cmd/burst

python: $(PYTHON)
$(PYTHON): requirements.txt scripts/setup-python.sh python/pyproject.toml
	scripts/setup-python.sh
	@touch $(PYTHON)

# A 50-task vtk sweep on this machine's cores, results in ./burst-demo/.
demo: build python
	$(BURST) submit examples/mesh-offsets/offset.py \
		--sweep examples/mesh-offsets/sweep.yaml \
		--python $(PYTHON) --out $(DEMO)/mesh-offsets

# A SimpleITK sweep over one shared volume.
demo-volume: build python
	$(PYTHON) examples/volume-filter/make-volume.py $(DEMO)/volume.nrrd
	$(BURST) submit examples/volume-filter/filter.py \
		--sweep examples/volume-filter/sweep.yaml --shared $(DEMO)/volume.nrrd \
		--python $(PYTHON) --out $(DEMO)/volume-filter

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The MinIO server that the S3 tests run against, built once into .cache/bin.
minio:
	GO=$(GO) scripts/minio.sh >/dev/null

# moto's server, the EC2 API emulator for the fleet tests, in .cache/moto.
moto:
	scripts/moto.sh >/dev/null

# Debian's OpenSSH server, which the ssh tests start on 127.0.0.1 (never
# as a service).
sshd:
	scripts/sshd.sh >/dev/null

# The account setup and the worker image, checked offline: terraform fmt
# (Terraform built once into .cache/bin) and packer validate (Debian's).
check-config:
	GO=$(GO) scripts/check-terraform.sh
	scripts/check-images.sh

# Every test: unit, conformance, lease contention, kill -9, pickle round
# trips against real Python, S3 on MinIO, EC2 on moto, cloud runs end to end
# (instances booted as local processes), ssh hosts on a real OpenSSH server,
# fuzz seeds, CLI end-to-end scripts,
# the offline checks of terraform/ and images/, and the Python package's
# tests (client, Processes drop-in, data helpers) against the built binary.
# The worker and the run store, where goroutines share leases, run under
# the race detector.
TEST_ENV := BURST_TEST_PYTHON=$(CURDIR)/$(PYTHON) BURST_MINIO=$(CURDIR)/.cache/bin/minio BURST_MOTO=$(CURDIR)/.cache/moto/bin/moto_server
RACE_PKGS := ./executor/... ./staging/...
test: build python minio moto sshd lint check-config
	$(TEST_ENV) $(GO) test -count=1 -timeout 20m -race $(RACE_PKGS)
	$(TEST_ENV) $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e '/executor' -e '/staging')
	$(MAKE) test-python

# The Python package's tests alone.
test-python: build python minio
	cd python && BURST_BIN=$(CURDIR)/$(BURST) BURST_MINIO=$(CURDIR)/.cache/bin/minio $(CURDIR)/$(PYTHON) -m pytest -q -p no:cacheprovider tests

bench: build python
	bench/local.sh

# Warm workers against fresh interpreters on the mesh-offsets example.
bench-warm: build python
	bench/warm.sh

bench-s3: minio
	BURST_MINIO=$(CURDIR)/.cache/bin/minio $(GO) test ./bench -run '^$$' -bench S3 -benchtime 1x -timeout 30m

# The 200-task, 2-slot run of bench/local.sh with its workers on an ssh
# host (this machine, through a private sshd) against workers here.
bench-ssh: python sshd
	BURST_TEST_PYTHON=$(CURDIR)/$(PYTHON) $(GO) test ./bench -run '^$$' -bench SSH -benchtime 1x -timeout 30m

clean:
	rm -rf bin $(DEMO)
