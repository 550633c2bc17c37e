/*-------------------------------------------------------------------------
 *
 * fence_table.h
 *	  Declarations shared by the files of fenced tables: fence_table.c (the
 *	  trigger), fence_table_config.c (the configuration, enable/disable),
 *	  fence_table_expr.c (the resource expression) and fence_table_stats.c
 *	  (counters, the view).
 *
 * src/fence_table.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_FENCE_TABLE_H
#define LOCKCTL_FENCE_TABLE_H

#include "postgres.h"

#include "access/htup.h"
#include "nodes/primnodes.h"
#include "utils/relcache.h"

/*
 * Name given to the trigger enable_fencing() creates.  BEFORE ROW triggers
 * fire in the order of their names; "zz_" puts this one after the names
 * people give their own triggers, so that it checks (and stamps the token
 * column of) the row as the other BEFORE triggers left it.
 */
#define FENCE_TRIGGER_NAME		"zz_lockctl_fence"

/* Name of the C trigger function, in schema lockctl. */
#define FENCE_TRIGGER_FUNC		"fence_trigger"

/*
 * The trigger's arguments are pairs (key, value), so that pg_dump's output
 * reads as what it means:
 *	 'resource', name					the one lease that guards every row
 *	 'resource_expression', expr		per-row lease name: canonical text,
 *										every name schema-qualified
 *	 'token_column', column				optional: where the token is stamped
 */
#define FENCE_ARG_RESOURCE		"resource"
#define FENCE_ARG_EXPRESSION	"resource_expression"
#define FENCE_ARG_TOKEN_COLUMN	"token_column"

/* A fenced table's configuration as its trigger's arguments give it. */
typedef struct FenceArgs
{
	char	   *resource;		/* the one lease of the table, or NULL */
	char	   *expression;		/* per-row lease name, or NULL */
	char	   *token_column;	/* or NULL */
} FenceArgs;

/* What the counters of a fenced table count. */
typedef enum FenceCounter
{
	FSTAT_CHECKED,				/* rows (and TRUNCATEs) checked */
	FSTAT_UNFENCED,				/* refused: no live fence covers the write */
	FSTAT_STALE,				/* refused: the row has a higher token */
	FSTAT_BYPASSED,				/* let through by lockctl.fencing_bypass */
	FSTAT_COUNT
} FenceCounter;

typedef struct FenceStatsEntry FenceStatsEntry;

/* fence_table.c */
extern int	lockctl_max_fenced_tables;

/* fence_table_config.c */
extern Oid	fence_trigger_fn(bool missing_ok);
extern struct Trigger *fence_find_trigger(Relation rel, Oid fnoid);
extern bool fence_parse_args(int nargs, char **args, FenceArgs *out);
extern char **fence_tuple_args(HeapTuple tup, TupleDesc desc, int *nargs);
extern Oid	fence_root_relid(Oid tgoid, Oid relid);
extern AttrNumber fence_token_column(Relation rel, const char *colname,
									 bool enabling);

/* fence_table_expr.c */
extern Expr *fence_expr_transform(Relation rel, const char *text, bool stored);
extern char *fence_expr_canonical(Relation rel, const char *text,
								  AttrNumber token_attnum);

/* fence_table_stats.c */
extern void fence_stats_bump(FenceStatsEntry *e, FenceCounter c);
extern FenceStatsEntry *fence_stats_entry(Oid relid, bool create);
extern void fence_stats_remove(Oid relid);
extern Size FenceTableShmemSize(void);
extern void FenceTableShmemStartup(void);
extern void FenceTableShmemRegister(void);

#endif							/* LOCKCTL_FENCE_TABLE_H */
