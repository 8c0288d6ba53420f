# Makefile for pgshadow: installs the extension with PGXS and drives the Go
# side (generator, tests, demo, benchmarks).
#
#   make generate         assemble sql/ into pgshadow--<version>.sql and migrations/ (needs Go)
#   make install          generate (when Go is present), then install into $(PG_CONFIG)'s share directory
#   make dist             pgshadow-<version>.tar.gz: the tree with the generated scripts, installable without Go
#   make release-files    git add -f the current version's generated scripts when releasing it
#   make test             run the Go tests against a private PostgreSQL $(PG) (default 15) holding
#                         this checkout's extension (TESTFLAGS passes flags to go test);
#                         PG_TARGET=18 runs the servers that play the target role on another major;
#                         TESTPKGS limits the packages (e.g. "./tests/replication ./tests/filemode")
#   make check-generated  fail if the generated files on disk are stale
#   make demo | bench     (QUICK=1 for a short benchmark run; bench uses the private installation like test)
#
# PGXS defines many variables of its own, so the Go side uses GO_* names only.

PG_CONFIG ?= pg_config
EXTENSION = pgshadow

# The current version's script is named explicitly so PGXS installs data even
# in a checkout where it has not been generated yet; the wildcard picks up the
# released scripts and the upgrade copies. DATA is expanded when the install
# recipe runs, after generate has written the files.
PGSHADOW_VERSION := $(shell sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" pgshadow.control)
DATA = $(sort $(wildcard pgshadow--*.sql) pgshadow--$(PGSHADOW_VERSION).sql)

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else
all install:
	@echo "pg_config not found (PG_CONFIG=$(PG_CONFIG)): install the PostgreSQL server development files or set PG_CONFIG" >&2
	@exit 1
endif

GO ?= go
GO_TEST_TIMEOUT ?= 20m
TESTFLAGS ?=

.PHONY: generate check-generated test vet demo bench dist release-files

# The current version's scripts are built from sql/ by the generator, which
# needs Go; only released versions' scripts are committed (docs/DESIGN.md,
# Layout). Without Go, a release tarball (make dist) carries them.
ifneq ($(shell command -v $(GO) 2>/dev/null),)
all: generate
install: generate
else
all install: pgshadow--$(PGSHADOW_VERSION).sql
endif

pgshadow--$(PGSHADOW_VERSION).sql:
	@echo "$@ is built from sql/ by the generator, which needs Go ($(GO) not found): install Go, or install from a release tarball (make dist), which carries the generated scripts" >&2
	@exit 1

# dist: a tarball of the committed tree plus the generated scripts, for
# `make install` where there is no Go.
DISTDIR ?= .
DIST = pgshadow-$(PGSHADOW_VERSION)
dist: generate
	rm -rf .dist && mkdir .dist
	git archive --prefix=$(DIST)/ HEAD | tar -x -C .dist
	cp pgshadow--*.sql .dist/$(DIST)/
	cp migrations/*.sql .dist/$(DIST)/migrations/
	tar -czf $(DISTDIR)/$(DIST).tar.gz -C .dist $(DIST)
	rm -rf .dist
	@echo "wrote $(DISTDIR)/$(DIST).tar.gz"

# release-files: when $(PGSHADOW_VERSION) is released, its generated scripts
# become release artifacts (upgrades from it start from them byte for byte),
# and are committed from then on; add their SHA-256 to
# internal/generator/released_test.go, which keeps them unchanged.
release-files: generate
	git add -f pgshadow--$(PGSHADOW_VERSION).sql pgshadow--*--$(PGSHADOW_VERSION).sql \
		migrations/*_pgshadow_$(subst .,_,$(PGSHADOW_VERSION)).*.sql

generate:
	$(GO) run ./cmd/pgshadow generate

check-generated:
	$(GO) run ./cmd/pgshadow generate -check

vet:
	$(GO) vet ./...

# The tests run against a private installation of PostgreSQL $(PG) under
# .pg/ (tests/pgroot), with this checkout's extension files in it. Servers
# that play the target role (pgtest.MainRoles) run PostgreSQL $(PG_TARGET),
# so PG=13 PG_TARGET=18 replicates from 13 to 18.
PG ?= 15
PG_TARGET ?= $(PG)
PG_ROOT = $(CURDIR)/.pg/$(PG)
PG_TARGET_ROOT = $(CURDIR)/.pg/$(PG_TARGET)

test: generate
	PGSHADOW_BINDIR=$$(tests/pgroot $(PG) $(PG_ROOT)) && export PGSHADOW_BINDIR && \
	PGSHADOW_TARGET_BINDIR=$$(tests/pgroot $(PG_TARGET) $(PG_TARGET_ROOT)) && export PGSHADOW_TARGET_BINDIR && \
	$(GO) test -count=1 -timeout $(GO_TEST_TIMEOUT) $(TESTFLAGS) $(or $(TESTPKGS),./...)

# demo, like test, runs servers of the private installation of PostgreSQL
# $(PG) holding this checkout's extension (nothing is installed system-wide)
demo: generate
	PGSHADOW_BINDIR=$$(tests/pgroot $(PG) $(PG_ROOT)) && export PGSHADOW_BINDIR && \
	$(GO) run ./cmd/pgshadow demo

# bench measures this checkout's extension in the same private installation
# as `make test` (never the shared system directory other servers may use)
bench: generate
	PGSHADOW_BINDIR=$$(tests/pgroot $(PG) $(PG_ROOT)) && export PGSHADOW_BINDIR && \
	$(GO) run ./bench $(if $(QUICK),-quick)
