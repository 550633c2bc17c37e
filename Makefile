# lockctl: PGXS build and tests.
#
#   make && sudo make install          build and install against pg_config
#   make LOCKCTL_WERROR=1              warnings are errors (scripts/test, CI)
#   make installcheck                  regress + isolation + TAP, each on a
#                                      temporary server with lockctl preloaded
#   make regresscheck | isolationcheck | tapcheck     one kind only
#   make examplescheck                 the demo and examples/, on a scratch server
#   make ormcheck                      the ORM matrix (examples/orm), on a scratch server
#   make regresscheck REGRESS=lease                  one regression test
#   make isolationcheck ISOLATION=reserve_last_seat          one isolation spec
#   make tapcheck PROVE_TESTS=t/001_preload.pl       one TAP test
#
# The temporary servers cannot run as root; scripts/test takes care of that.

EXTENSION = lockctl
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = lockctl
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
PGFILEDESC = "lockctl - version-checked updates, fenced leases and expiring reservations"

# The install script is assembled from one SQL fragment per concept, in
# this order, so that each concept keeps its SQL beside its C code:
# lockctl.sql first (the library check, the schemas, what every concept
# uses), worker.sql last (it ends by waking the expiry worker).
SQL_PARTS = src/lockctl.sql src/lease.sql src/reserve.sql src/request.sql \
	src/version.sql src/worker.sql
# The install script of the version under development is built from src/;
# those of released versions (lockctl--1.0.sql, ...) are frozen copies at
# the top and never change, and lockctl--OLD--NEW.sql carry installed
# databases forward with ALTER EXTENSION lockctl UPDATE.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*.sql))

# Tests are whatever files are present: sql/*.sql, specs/*.spec, t/*.pl.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=./lockctl.conf \
	--load-extension=$(EXTENSION)
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=./lockctl.conf \
	--load-extension=$(EXTENSION)
TAP_TESTS = 1

EXTRA_CLEAN = tmp_check_regress tmp_check_iso tmp_check_examples tmp_check_orm results output_iso regression.diffs regression.out

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

$(OBJS): $(wildcard src/*.h)

.PHONY: regresscheck isolationcheck tapcheck examplescheck ormcheck
regresscheck:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)
isolationcheck:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
tapcheck:
	$(prove_installcheck)
# The demonstration and the client examples, against a scratch server.
examplescheck:
	PG_CONFIG=$(PG_CONFIG) bash scripts/examples-check
# The ORM matrix and the driver notes, against a scratch server.
ormcheck:
	PG_CONFIG=$(PG_CONFIG) bash scripts/orm-check
