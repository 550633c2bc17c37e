# lockctl: PGXS build and tests.
#
#   make && sudo make install          build and install against pg_config
#   make LOCKCTL_WERROR=1              warnings are errors (scripts/test, CI)
#   make installcheck                  regress + isolation + TAP, each on a
#                                      temporary server with lockctl preloaded
#   make regresscheck | isolationcheck | tapcheck     one kind only
#   make examplescheck                 the demo and examples/, on a scratch server
#   make clientscheck                  clients/python, clients/node and the
#                                      postgres_exporter queries, on a scratch server
#   make ormcheck                      the ORM matrix (examples/orm), on a scratch server
#   make regresscheck REGRESS=lease                  one regression test
#   make isolationcheck ISOLATION=reserve_last_seat          one isolation spec
#   make tapcheck PROVE_TESTS=t/001_preload.pl       one TAP test
#   make dist                          the PGXN zip, lockctl-<version>.zip
#
# The temporary servers cannot run as root; scripts/test takes care of that.
# Builds in another directory work too (make -f SRC/Makefile VPATH=SRC, as
# Debian's pg_buildext does): every source is named relative to $(srctop).

EXTENSION = lockctl
# The source tree: the directory of this Makefile ("./" in the usual case).
srctop := $(dir $(firstword $(MAKEFILE_LIST)))
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(srctop)$(EXTENSION).control)

MODULE_big = lockctl
OBJS = $(patsubst $(srctop)%.c,%.o,$(sort $(wildcard $(srctop)src/*.c)))
PGFILEDESC = "lockctl - version-checked updates, fenced leases and expiring reservations"

# The install script is assembled from one SQL fragment per concept, in
# this order, so that each concept keeps its SQL beside its C code:
# lockctl.sql first (the library check, the schemas, what every concept
# uses), lease_token.sql before reserve.sql (hold ids use era_nextval),
# reserve_*.sql after reserve.sql (carts, per-holder limits, partial
# confirm, waitlists, calendars), worker.sql last (it ends by waking the expiry
# worker).  Named relative to $(srctop) so that builds in another
# directory work.
SQL_PARTS = $(addprefix $(srctop)src/,lockctl.sql lease.sql lease_notify.sql lease_token.sql \
	fence_table.sql reserve.sql reserve_cart.sql reserve_limits.sql \
	reserve_partial.sql reserve_waitlist.sql reserve_calendar.sql request.sql version.sql \
	worker.sql)
# The install script of the version under development is built from src/;
# those of released versions (lockctl--1.0.sql, ...) are frozen copies at
# the top and never change, and lockctl--OLD--NEW.sql carry installed
# databases forward with ALTER EXTENSION lockctl UPDATE.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(notdir $(wildcard $(srctop)$(EXTENSION)--*.sql)))

# Tests are whatever files are present: sql/*.sql, specs/*.spec, t/*.pl.
REGRESS = $(patsubst $(srctop)sql/%.sql,%,$(sort $(wildcard $(srctop)sql/*.sql)))
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=$(srctop)lockctl.conf \
	--load-extension=$(EXTENSION)
ISOLATION = $(patsubst $(srctop)specs/%.spec,%,$(sort $(wildcard $(srctop)specs/*.spec)))
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srctop)lockctl.conf \
	--load-extension=$(EXTENSION)
# isolationcheck plays the specs a second time with the expiry worker's pass
# every 10 ms (specs/busy_worker.conf): what a spec shows must not depend on
# when the real worker's passes fall.  ISOLATION_BUSY=0: once only.
ISOLATION_BUSY ?= 1
ISOLATION_BUSY_OPTS = --temp-instance=./tmp_check_iso_busy --temp-config=$(srctop)lockctl.conf \
	--temp-config=$(srctop)specs/busy_worker.conf --load-extension=$(EXTENSION) \
	--outputdir=output_iso_busy
TAP_TESTS = 1

EXTRA_CLEAN = tmp_check_regress tmp_check_iso tmp_check_iso_busy output_iso_busy tmp_check_examples tmp_check_clients tmp_check_orm results output_iso regression.diffs regression.out

PG_CPPFLAGS += -DLOCKCTL_VERSION=\"$(EXTVERSION)\"

# -Wno-unused-parameter: every fmgr function takes fcinfo whether it uses
# it or not.  Warnings are errors where the project asks for it (scripts/test
# and CI set LOCKCTL_WERROR=1), not for everyone who builds from source: a
# packager's newer compiler may warn about something new.
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
ifeq ($(LOCKCTL_WERROR),1)
PG_CFLAGS += -Werror
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(SQL_PARTS) $(EXTENSION).control
	cat $(SQL_PARTS) > $@

$(OBJS): $(wildcard $(srctop)src/*.h)

# Objects go to src/ of the build directory, which a VPATH build must make.
$(OBJS) $(OBJS:.o=.bc): | lockctl-objdir
.PHONY: lockctl-objdir
lockctl-objdir:
	@mkdir -p src

.PHONY: regresscheck isolationcheck tapcheck examplescheck clientscheck ormcheck
regresscheck:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)
isolationcheck:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
ifneq ($(ISOLATION_BUSY),0)
	$(pg_isolation_regress_installcheck) $(ISOLATION_BUSY_OPTS) $(ISOLATION)
endif
tapcheck:
	$(prove_installcheck)
# The demonstration and the client examples, against a scratch server.
examplescheck:
	PG_CONFIG=$(PG_CONFIG) bash $(srctop)scripts/examples-check

# The PGXN distribution: the committed tree (HEAD) as a zip whose files all
# sit under lockctl-<version>/, the version being META.json's.  Uncommitted
# changes are not in it, on purpose: a release is a commit.
DISTVERSION = $(shell perl -MJSON::PP -0777 -ne 'print decode_json($$_)->{version}' $(srctop)META.json)
DISTNAME = $(EXTENSION)-$(DISTVERSION)
.PHONY: dist
dist:
	@test -n '$(DISTVERSION)' || { echo 'no version in META.json' >&2; exit 1; }
	git -C '$(srctop)' archive --format=zip --prefix='$(DISTNAME)/' --output='$(CURDIR)/$(DISTNAME).zip' HEAD
	@echo '$(CURDIR)/$(DISTNAME).zip'

# The Python and Node.js libraries and the exporter's queries.
clientscheck:
	PG_CONFIG=$(PG_CONFIG) bash $(srctop)scripts/clients-check

# The ORM matrix and the driver notes, against a scratch server.
ormcheck:
	PG_CONFIG=$(PG_CONFIG) bash $(srctop)scripts/orm-check
