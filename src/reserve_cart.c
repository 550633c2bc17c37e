/*-------------------------------------------------------------------------
 *
 * reserve_cart.c
 *	  A cart's items, checked, looked up and merged without the executor.
 *
 * lockctl.reserve_cart (src/reserve_cart.sql) starts by turning its items,
 * a JSON array of {"resource": name, "quantity": n}, into one entry per
 * pool in pool id order (the order every cart locks its pools in), with
 * the quantities of the items that name the same pool added up.  In SQL
 * that is a query of two lateral joins and two aggregations, whose
 * executor start-up (ExecInitAgg, the projections) cost about a third of a
 * whole cart.  Here it is a loop over the array:
 *
 *   lockctl_internal.cart_plain_items(items jsonb, max_items integer,
 *       max_units bigint, OUT pools bigint[], OUT nslots integer[],
 *       OUT names text[], OUT quantities bigint[])
 *
 * returns the four arrays, in pool id order, when every item is plain: an
 * object with the key "resource" (a string of 1 to name_max_bytes() bytes)
 * and perhaps "quantity" (a whole number from 1 to max_units; 1 when left
 * out) and no other key, naming a pool that exists, and no pool's sum past
 * max_units; and at most max_items items.  The bounds come from the
 * caller, who has them from lockctl_internal.max_cart_items() and
 * max_units(), so that they are defined in one place.
 *
 * Anything else, and every output is NULL: the caller then runs
 * lockctl_internal.cart_items, which goes through the items one by one and
 * raises the error of the first wrong one (its messages name the item), or
 * merges them itself when the pools could not be looked up here
 * (ReservePoolOf: REPEATABLE READ, SERIALIZABLE, a table not as installed).
 * So this function raises no error of its own for bad input: one place
 * words each error, and a wrong item costs what it did before.
 *
 * src/reserve_cart.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "lockctl.h"
#include "reserve.h"

/* One pool of the cart: an item, then the sum of the items naming it. */
typedef struct CartPool
{
	int64		pool;
	int32		nslots;
	Datum		name;			/* text */
	int64		quantity;
} CartPool;

static int
cart_pool_cmp(const void *a, const void *b)
{
	int64		x = ((const CartPool *) a)->pool;
	int64		y = ((const CartPool *) b)->pool;

	return (x > y) - (x < y);
}

/*
 * The quantity of an item: *q and true when v is a whole number between 1
 * and max_units, false otherwise.
 */
static bool
cart_quantity(const JsonbValue *v, int64 max_units, int64 *q)
{
	Datum		n;

	if (v->type != jbvNumeric)
		return false;
	n = NumericGetDatum(v->val.numeric);
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, n,
										  DirectFunctionCall2(numeric_trunc, n,
															  Int32GetDatum(0)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, n,
										 NumericGetDatum(int64_to_numeric(1)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, n,
										 NumericGetDatum(int64_to_numeric(max_units)))))
		return false;
	*q = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));
	return true;
}

/*
 * Item i of the cart, into *p: false when it is not plain, or names no
 * pool, or its pool could not be looked up here.
 */
static bool
cart_item(JsonbContainer *items, uint32 i, int64 max_units, CartPool *p)
{
	JsonbValue *item = getIthJsonbValueFromContainer(items, i);
	JsonbContainer *obj;
	JsonbValue	resource;
	JsonbValue	quantity;
	int			nkeys = 1;
	bool		found;

	if (item == NULL || item->type != jbvBinary ||
		!JsonContainerIsObject(item->val.binary.data))
		return false;
	obj = item->val.binary.data;

	if (getKeyJsonValueFromContainer(obj, "resource", 8, &resource) == NULL ||
		resource.type != jbvString || resource.val.string.len == 0 ||
		resource.val.string.len > LOCKCTL_NAME_MAXLEN)
		return false;
	if (getKeyJsonValueFromContainer(obj, "quantity", 8, &quantity) == NULL)
		p->quantity = 1;
	else if (!cart_quantity(&quantity, max_units, &p->quantity))
		return false;
	else
		nkeys++;
	/* no key but these two */
	if (JsonContainerSize(obj) != nkeys)
		return false;

	p->name = PointerGetDatum(cstring_to_text_with_len(resource.val.string.val,
													   resource.val.string.len));
	return ReservePoolOf(p->name, &p->pool, &p->nslots, &found) && found;
}

/* its result's descriptor, kept (direct.c) */
static LockctlResultDesc result_desc;

/*
 * lockctl_internal.cart_plain_items(items, max_items, max_units): see the
 * top of this file.  For lockctl.reserve_cart only (no EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_cart_plain_items);
Datum
lockctl_cart_plain_items(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = lockctl_result_desc(fcinfo, &result_desc);
	Datum		values[4] = {0};
	bool		nulls[4] = {true, true, true, true};
	Jsonb	   *items;
	int32		max_items;
	int64		max_units;
	uint32		nitems;
	CartPool   *pools;
	int			npools;
	uint32		i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		goto not_plain;
	items = PG_GETARG_JSONB_P(0);
	max_items = PG_GETARG_INT32(1);
	max_units = PG_GETARG_INT64(2);
	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		goto not_plain;
	nitems = JB_ROOT_COUNT(items);
	if (nitems == 0 || max_items < 1 || nitems > (uint32) max_items)
		goto not_plain;

	pools = palloc(nitems * sizeof(CartPool));
	for (i = 0; i < nitems; i++)
		if (!cart_item(&items->root, i, max_units, &pools[i]))
			goto not_plain;

	/* one entry per pool, in pool id order */
	qsort(pools, nitems, sizeof(CartPool), cart_pool_cmp);
	npools = 0;
	for (i = 0; i < nitems; i++)
	{
		if (npools > 0 && pools[npools - 1].pool == pools[i].pool)
		{
			/* each at most max_units, and at most max_items of them */
			pools[npools - 1].quantity += pools[i].quantity;
			if (pools[npools - 1].quantity > max_units)
				goto not_plain;
		}
		else
			pools[npools++] = pools[i];
	}

	{
		Datum	   *ids = palloc(npools * sizeof(Datum));
		Datum	   *nslots = palloc(npools * sizeof(Datum));
		Datum	   *names = palloc(npools * sizeof(Datum));
		Datum	   *quantities = palloc(npools * sizeof(Datum));
		int			k;

		for (k = 0; k < npools; k++)
		{
			ids[k] = Int64GetDatum(pools[k].pool);
			nslots[k] = Int32GetDatum(pools[k].nslots);
			names[k] = pools[k].name;
			quantities[k] = Int64GetDatum(pools[k].quantity);
		}
		values[0] = PointerGetDatum(construct_array(ids, npools, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(nslots, npools, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(names, npools, TEXTOID, -1,
													false, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_array(quantities, npools, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		memset(nulls, false, sizeof(nulls));
	}

not_plain:
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
