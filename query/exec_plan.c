/*
 * exec_plan.c — turning a SELECT into what the bucket loop and the raw
 * merger read: fields, columns, tag sets, groups, and a compiled WHERE.
 *
 * Series are found through the index only, never by visiting every series
 * of a measurement:
 *   1. each tag leaf of WHERE becomes an id set (vg_rtxn_match), except a
 *      tag = 'v' AND-ed with a narrower condition, whose set is the
 *      narrower one's cut by it (its postings searched for those ids, not
 *      read whole: and_with_leaf, and_of_tags);
 *   2. the leaves combine by AND = intersection, OR = union, with field and
 *      time leaves standing for "every series" — a superset of the series
 *      that can match, since the language has no NOT;
 *   3. each needed field's series (vg_rtxn_field_series) are cut to it —
 *      or, for a cut no larger than the number of needed fields, each of
 *      its series is described and kept by its field (collect_series);
 *   4. those series are described and grouped into tag sets; for each tag
 *      set the condition is evaluated with field leaves unknown
 *      (three-valued): false drops it, true needs no per-row test, unknown
 *      makes the executor test every row.
 *
 * A tag set is named by canonical bytes "k1\0v1\0k2\0v2\0..." (tags sorted
 * by key; names and values never contain NUL), whose byte order is the
 * tag-set order of vg_query.h.  Group keys use the same encoding of the
 * GROUP BY values, so sorting by (group key, tag-set key) puts groups in
 * result order with their tag sets in tag-set order.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int nomem(vg_exec_t *x)
{
	return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
}

static bool str_eq(vg_str_t a, vg_str_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static int str_cmp(vg_str_t a, vg_str_t b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = n ? memcmp(a.data, b.data, n) : 0;
	return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* ---- tag conditions to id sets -------------------------------------------- */

typedef struct tagres {
	vg_exec_t *x;
	vg_str_t measurement;
	vg_idset_t *leaf_sets; /* per tag leaf, kept when not NULL */
	size_t nleaves;
} tagres_t;

static vg_matcher_t matcher_of(const vg_cond_t *c)
{
	vg_matcher_t m = {0};
	m.key = c->name;
	m.value = c->value;
	m.regex = c->regex;
	m.op = c->op == VG_CMP_EQ   ? VG_MATCH_EQ
	       : c->op == VG_CMP_NE ? VG_MATCH_NE
	       : c->op == VG_CMP_RE ? VG_MATCH_RE
	                            : VG_MATCH_NRE;
	return m;
}

/* tag = 'v' (not ''): one postings key, which can be probed id by id. */
static bool is_probe_leaf(const vg_cond_t *c)
{
	return c->kind == VG_COND_TAG && c->op == VG_CMP_EQ && c->value.len > 0;
}

static int superset(tagres_t *r, const vg_cond_t *c, vg_idset_t *out, bool *all);

/* leaf_sets[slot] = a copy of set. */
static int copy_leaf_set(tagres_t *r, const vg_idset_t *set, size_t slot)
{
	const vg_idset_t empty = VG_IDSET_INIT;
	return vg_idset_union(set, &empty, &r->leaf_sets[slot]) ? nomem(r->x) : 0;
}

/*
 * other AND leaf, where leaf is tag = 'v': resolves `other` first and then
 * keeps the ids under leaf's postings, probing them when they are few
 * (host = 'h' AND metric = 'm' over a million series: the host's 100 ids
 * looked up among the metric's 10,000 instead of reading those).
 *
 * With leaf sets kept (the planner), leaf's set is that cut one, leaf ∩
 * superset(other), at leaf's own number (leaf_first: leaf is the left
 * operand, numbered before other's leaves).  Its truth then differs from
 * the full set's only for series outside superset(other), where `other` is
 * false and so is the AND: every node's three-valued truth, per series, is
 * what the full sets give, and so are the rows and value ranges of
 * exec_plan's evaluators.
 */
static int and_with_leaf(tagres_t *r, const vg_cond_t *other, const vg_cond_t *leaf,
                         bool leaf_first, vg_idset_t *out, bool *all)
{
	vg_exec_t *x = r->x;
	vg_idset_t part = VG_IDSET_INIT;
	bool other_all;
	size_t slot = 0;
	if (r->leaf_sets && leaf_first)
		slot = r->nleaves++;
	int code = superset(r, other, &part, &other_all);
	if (r->leaf_sets && !leaf_first)
		slot = r->nleaves++;
	if (code == 0) {
		vg_matcher_t m = matcher_of(leaf);
		code = other_all ? vg_rtxn_match(x->txn, r->measurement, &m, out)
		                 : vg_rtxn_match_filter(x->txn, r->measurement, &m, &part, out);
		if (code)
			code = vg_query_error_set(x->err, code, "tag lookup failed: %s",
			                          vg_strerror(code));
		*all = false;
	}
	if (code == 0 && r->leaf_sets)
		code = copy_leaf_set(r, out, slot); /* a copy: out may be consumed */
	vg_idset_release(&part);
	return code;
}

/* A tag read whole without first asking which of two is smaller. */
#define VG_SMALL_TAG 256

/*
 * tag = 'v' AND tag = 'w': the tag with fewer series is read and the other
 * probed with its ids, whichever is written first (host = 'h' AND metric =
 * 'm' and metric = 'm' AND host = 'h' both read the host's 100 series and
 * probe the metric's 10,000).  The left tag is read at once when it has at
 * most VG_SMALL_TAG series, without counting the right one.  Leaf sets as
 * in and_with_leaf: the read tag's whole, the probed tag's cut.
 */
static int and_of_tags(tagres_t *r, const vg_cond_t *c, vg_idset_t *out, bool *all)
{
	vg_exec_t *x = r->x;
	vg_matcher_t ml = matcher_of(c->left), mr = matcher_of(c->right);
	vg_idset_t part = VG_IDSET_INIT;
	size_t nl, nr;
	bool right_read = false;
	int code = vg_rtxn_match_upto(x->txn, r->measurement, &ml, VG_SMALL_TAG, &part, &nl);
	if (code == 0 && nl > VG_SMALL_TAG) {
		code = vg_rtxn_match_upto(x->txn, r->measurement, &mr, 0, &part, &nr);
		right_read = nr < nl;
		code = code ? code
		            : vg_rtxn_match(x->txn, r->measurement, right_read ? &mr : &ml, &part);
	}
	if (code == 0)
		code = vg_rtxn_match_filter(x->txn, r->measurement, right_read ? &ml : &mr, &part,
		                            out);
	if (code)
		code = vg_query_error_set(x->err, code, "tag lookup failed: %s", vg_strerror(code));
	*all = false;
	if (code == 0 && r->leaf_sets) {
		/* Left numbered before right. */
		size_t left = r->nleaves, right = r->nleaves + 1;
		r->nleaves += 2;
		code = copy_leaf_set(r, right_read ? out : &part, left);
		code = code ? code : copy_leaf_set(r, right_read ? &part : out, right);
	}
	vg_idset_release(&part);
	return code;
}

/* *out = series that may satisfy c; *all = "every series" (out unused). */
static int superset(tagres_t *r, const vg_cond_t *c, vg_idset_t *out, bool *all)
{
	vg_exec_t *x = r->x;
	if (c->kind == VG_COND_AND && is_probe_leaf(c->left) && is_probe_leaf(c->right))
		return and_of_tags(r, c, out, all);
	if (c->kind == VG_COND_AND && (is_probe_leaf(c->left) || is_probe_leaf(c->right)))
		return is_probe_leaf(c->right) ? and_with_leaf(r, c->left, c->right, false, out, all)
		                               : and_with_leaf(r, c->right, c->left, true, out, all);
	if (c->kind == VG_COND_TAG) {
		vg_matcher_t m = matcher_of(c);
		int code = vg_rtxn_match(x->txn, r->measurement, &m, out);
		if (code)
			return vg_query_error_set(x->err, code, "tag lookup failed: %s",
			                          vg_strerror(code));
		*all = false;
		if (r->leaf_sets) {
			/* A copy: out may be consumed by the caller. */
			const vg_idset_t empty = VG_IDSET_INIT;
			if (vg_idset_union(out, &empty, &r->leaf_sets[r->nleaves++]))
				return nomem(x);
		}
		return 0;
	}
	if (c->kind != VG_COND_AND && c->kind != VG_COND_OR) {
		*all = true;
		return 0;
	}
	vg_idset_t a = VG_IDSET_INIT, b = VG_IDSET_INIT;
	bool alla, allb;
	int code = superset(r, c->left, &a, &alla);
	code = code ? code : superset(r, c->right, &b, &allb);
	if (code == 0) {
		bool is_and = c->kind == VG_COND_AND;
		if (is_and ? (alla && allb) : (alla || allb)) {
			*all = true;
		} else if (is_and && (alla || allb)) {
			vg_idset_t *keep = alla ? &b : &a;
			vg_idset_t tmp = *out;
			*out = *keep;
			*keep = tmp;
			*all = false;
		} else {
			*all = false;
			code =
			    is_and ? vg_idset_intersect(&a, &b, out) : vg_idset_union(&a, &b, out);
			if (code)
				code = nomem(x);
		}
	}
	vg_idset_release(&a);
	vg_idset_release(&b);
	return code;
}

int vg_resolve_tag_cond(vg_exec_t *x, vg_str_t measurement, const vg_cond_t *cond, vg_idset_t *out)
{
	int code = 0;
	bool all = true;
	vg_idset_t part = VG_IDSET_INIT;
	tagres_t r = {x, measurement, NULL, 0};
	if (cond)
		code = superset(&r, cond, &part, &all);
	/* Every series only when the condition does not narrow them: reading
	 * a measurement's whole postings costs 4 bytes per series. */
	if (code == 0 && all) {
		code = vg_rtxn_measurement_series(x->txn, measurement, &part);
		if (code)
			code = vg_query_error_set(x->err, code, "series lookup failed: %s",
			                          vg_strerror(code));
	}
	if (code == 0) {
		vg_idset_t tmp = *out;
		*out = part;
		part = tmp;
	}
	vg_idset_release(&part);
	return code;
}

/* ---- the compiled condition ------------------------------------------------ */

static size_t count_nodes(const vg_cond_t *c, size_t *tag_leaves)
{
	if (c->kind == VG_COND_AND || c->kind == VG_COND_OR)
		return 1 + count_nodes(c->left, tag_leaves) + count_nodes(c->right, tag_leaves);
	if (c->kind == VG_COND_TAG)
		(*tag_leaves)++;
	return 1;
}

static int field_index(vg_exec_t *x, vg_plan_t *plan, vg_str_t name, bool selected, size_t *cap,
                       size_t *out)
{
	for (size_t i = 0; i < plan->nfields; i++)
		if (str_eq(plan->fields[i].name, name)) {
			plan->fields[i].selected |= selected;
			*out = i;
			return 0;
		}
	if (plan->nfields == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		vg_plan_field_t *v = vg_arena_array(&plan->arena, ncap, sizeof *v);
		if (!v)
			return nomem(x);
		if (plan->nfields)
			memcpy(v, plan->fields, plan->nfields * sizeof *v);
		plan->fields = v;
		*cap = ncap;
	}
	vg_plan_field_t *f = &plan->fields[plan->nfields];
	memset(f, 0, sizeof *f);
	f->name = name;
	f->selected = selected;
	*out = plan->nfields++;
	return 0;
}

/* Emits nodes depth-first; tag leaves are numbered in the same order as
 * superset() visits them. */
static int compile(vg_exec_t *x, vg_plan_t *plan, const vg_cond_t *c, size_t *fcap, int *leaf,
                   int *out)
{
	int self = (int)plan->nprog++;
	vg_prog_node_t *n = &plan->prog[self];
	n->kind = c->kind;
	n->op = c->op;
	int code = 0;
	if (c->kind == VG_COND_AND || c->kind == VG_COND_OR) {
		int l = 0, r = 0;
		code = compile(x, plan, c->left, fcap, leaf, &l);
		code = code ? code : compile(x, plan, c->right, fcap, leaf, &r);
		plan->prog[self].left = l;
		plan->prog[self].right = r;
	} else if (c->kind == VG_COND_TAG) {
		n->leaf = (*leaf)++;
	} else if (c->kind == VG_COND_FIELD) {
		size_t f;
		code = field_index(x, plan, c->name, false, fcap, &f);
		plan->prog[self].field = (int)f;
		plan->prog[self].number = c->number;
		plan->has_field_cond = true;
	}
	*out = self;
	return code;
}

static int tri_eval(const vg_plan_t *plan, int i, const bool *truth)
{
	const vg_prog_node_t *n = &plan->prog[i];
	switch (n->kind) {
	case VG_COND_AND: {
		int a = tri_eval(plan, n->left, truth), b = tri_eval(plan, n->right, truth);
		if (a == VG_TRI_FALSE || b == VG_TRI_FALSE)
			return VG_TRI_FALSE;
		return a == VG_TRI_TRUE && b == VG_TRI_TRUE ? VG_TRI_TRUE : VG_TRI_UNKNOWN;
	}
	case VG_COND_OR: {
		int a = tri_eval(plan, n->left, truth), b = tri_eval(plan, n->right, truth);
		if (a == VG_TRI_TRUE || b == VG_TRI_TRUE)
			return VG_TRI_TRUE;
		return a == VG_TRI_FALSE && b == VG_TRI_FALSE ? VG_TRI_FALSE : VG_TRI_UNKNOWN;
	}
	case VG_COND_TAG:
		return truth[n->leaf] ? VG_TRI_TRUE : VG_TRI_FALSE;
	case VG_COND_FIELD:
		return VG_TRI_UNKNOWN;
	default:
		return VG_TRI_TRUE; /* time: already the scan range */
	}
}

static bool row_eval(const vg_plan_t *plan, int i, const vg_tagset_t *ts, const double *values,
                     const bool *present)
{
	const vg_prog_node_t *n = &plan->prog[i];
	switch (n->kind) {
	case VG_COND_AND:
		return row_eval(plan, n->left, ts, values, present) &&
		       row_eval(plan, n->right, ts, values, present);
	case VG_COND_OR:
		return row_eval(plan, n->left, ts, values, present) ||
		       row_eval(plan, n->right, ts, values, present);
	case VG_COND_TAG:
		return ts->tag_truth[n->leaf];
	case VG_COND_FIELD:
		return present[n->field] && vg_cmp_number(values[n->field], n->op, n->number);
	default:
		return true;
	}
}

bool vg_plan_row_matches(const vg_plan_t *plan, const vg_tagset_t *ts, const double *values,
                         const bool *present)
{
	if (ts->residual != VG_TRI_UNKNOWN)
		return ts->residual == VG_TRI_TRUE;
	return row_eval(plan, plan->prog_root, ts, values, present);
}

static vg_value_range_t range_of(vg_range_kind_t kind)
{
	vg_value_range_t r = {kind, -INFINITY, INFINITY, false, false};
	return r;
}

static vg_value_range_t range_and(vg_value_range_t a, vg_value_range_t b)
{
	if (a.kind == VG_RANGE_NONE || b.kind == VG_RANGE_NONE)
		return range_of(VG_RANGE_NONE);
	if (a.kind == VG_RANGE_COMPLEX || b.kind == VG_RANGE_COMPLEX)
		return range_of(VG_RANGE_COMPLEX);
	if (a.kind == VG_RANGE_ALL)
		return b;
	if (b.kind == VG_RANGE_ALL)
		return a;
	vg_value_range_t r = a;
	if (b.lo > r.lo || (b.lo == r.lo && b.lo_open)) {
		r.lo = b.lo;
		r.lo_open = b.lo_open;
	}
	if (b.hi < r.hi || (b.hi == r.hi && b.hi_open)) {
		r.hi = b.hi;
		r.hi_open = b.hi_open;
	}
	return r;
}

static vg_value_range_t range_eval(const vg_plan_t *plan, int i, const vg_tagset_t *ts,
                                   size_t field)
{
	const vg_prog_node_t *n = &plan->prog[i];
	switch (n->kind) {
	case VG_COND_AND:
		return range_and(range_eval(plan, n->left, ts, field),
		                 range_eval(plan, n->right, ts, field));
	case VG_COND_OR: {
		vg_value_range_t a = range_eval(plan, n->left, ts, field);
		vg_value_range_t b = range_eval(plan, n->right, ts, field);
		if (a.kind == VG_RANGE_ALL || b.kind == VG_RANGE_ALL)
			return range_of(VG_RANGE_ALL);
		if (a.kind == VG_RANGE_NONE)
			return b;
		if (b.kind == VG_RANGE_NONE)
			return a;
		return range_of(VG_RANGE_COMPLEX);
	}
	case VG_COND_TAG:
		return range_of(ts->tag_truth[n->leaf] ? VG_RANGE_ALL : VG_RANGE_NONE);
	case VG_COND_FIELD: {
		if ((size_t)n->field != field) /* absent: every comparison fails */
			return range_of(VG_RANGE_NONE);
		vg_value_range_t r = range_of(VG_RANGE_SPAN);
		switch (n->op) {
		case VG_CMP_EQ:
			r.lo = r.hi = n->number;
			break;
		case VG_CMP_LT:
		case VG_CMP_LE:
			r.hi = n->number;
			r.hi_open = n->op == VG_CMP_LT;
			break;
		case VG_CMP_GT:
		case VG_CMP_GE:
			r.lo = n->number;
			r.lo_open = n->op == VG_CMP_GT;
			break;
		default:
			return range_of(VG_RANGE_COMPLEX);
		}
		return r;
	}
	default:
		return range_of(VG_RANGE_ALL);
	}
}

vg_value_range_t vg_plan_value_range(const vg_plan_t *plan, const vg_tagset_t *ts, size_t field)
{
	if (ts->residual != VG_TRI_UNKNOWN)
		return range_of(ts->residual == VG_TRI_TRUE ? VG_RANGE_ALL : VG_RANGE_NONE);
	return range_eval(plan, plan->prog_root, ts, field);
}

/* ---- columns --------------------------------------------------------------- */

static int add_column(vg_exec_t *x, vg_plan_t *plan, const vg_select_column_t *sc, vg_str_t field,
                      vg_str_t name, size_t *fcap)
{
	vg_plan_column_t *col = &plan->columns[plan->ncolumns];
	size_t f;
	int code = field_index(x, plan, field, true, fcap, &f);
	if (code)
		return code;
	col->agg = sc->agg;
	col->field = f;
	col->percentile = sc->percentile;
	col->rate_unit_ns = sc->rate_unit_ns;
	if (sc->agg == VG_AGG_MEDIAN || sc->agg == VG_AGG_PERCENTILE)
		plan->fields[f].needs_values = true;
	if (sc->agg == VG_AGG_STDDEV)
		plan->fields[f].needs_m2 = true;
	/* A repeated name gets _1, _2, ... */
	vg_buf_t b = VG_BUF_INIT;
	code = vg_buf_append(&b, name.data, name.len);
	for (unsigned k = 1; code == 0; k++) {
		bool taken = false;
		for (size_t i = 0; i < plan->ncolumns && !taken; i++)
			taken = plan->columns[i].name.len == b.len &&
			        memcmp(plan->columns[i].name.data, b.data, b.len) == 0;
		if (!taken)
			break;
		b.len = name.len;
		code = vg_buf_printf(&b, "_%u", k);
	}
	if (code == 0)
		code = vg_arena_str(&plan->arena, (const char *)b.data, b.len, &col->name);
	vg_buf_release(&b);
	if (code)
		return nomem(x);
	plan->ncolumns++;
	return 0;
}

static int plan_columns(vg_exec_t *x, const vg_select_t *sel, vg_plan_t *plan, size_t *fcap)
{
	vg_name_list_t keys = {&plan->arena, NULL, 0, 0};
	bool wildcard = false;
	for (size_t i = 0; i < sel->ncolumns; i++)
		wildcard |= sel->columns[i].wildcard;
	if (wildcard) {
		int code = vg_rtxn_list_field_keys(x->txn, sel->measurement, vg_name_list_add, &keys);
		if (code)
			return code == VG_ENOMEM
			           ? nomem(x)
			           : vg_query_error_set(x->err, code,
			                                "listing field keys failed: %s",
			                                vg_strerror(code));
	}
	size_t n = 0;
	for (size_t i = 0; i < sel->ncolumns; i++)
		n += sel->columns[i].wildcard ? keys.len : 1;
	plan->columns = vg_arena_array(&plan->arena, n ? n : 1, sizeof *plan->columns);
	if (!plan->columns)
		return nomem(x);
	for (size_t i = 0; i < sel->ncolumns; i++) {
		const vg_select_column_t *sc = &sel->columns[i];
		if (!sc->wildcard) {
			int code = add_column(x, plan, sc, sc->field, sc->name, fcap);
			if (code)
				return code;
			continue;
		}
		for (size_t k = 0; k < keys.len; k++) {
			vg_str_t name = keys.v[k];
			if (sc->agg != VG_AGG_NONE) {
				vg_buf_t b = VG_BUF_INIT;
				int code = vg_buf_printf(&b, "%s_%.*s", vg_agg_fn_name(sc->agg),
				                         (int)keys.v[k].len, keys.v[k].data);
				code = code ? code
				            : vg_arena_str(&plan->arena, (const char *)b.data,
				                           b.len, &name);
				vg_buf_release(&b);
				if (code)
					return nomem(x);
			}
			int code = add_column(x, plan, sc, keys.v[k], name, fcap);
			if (code)
				return code;
		}
	}
	plan->column_names = vg_arena_array(&plan->arena, plan->ncolumns + 1, sizeof(vg_str_t));
	plan->column_types =
	    vg_arena_array(&plan->arena, plan->ncolumns + 1, sizeof(vg_column_type_t));
	if (!plan->column_names || !plan->column_types)
		return nomem(x);
	plan->column_names[0] = (vg_str_t){"time", 4};
	plan->column_types[0] = VG_COLUMN_TIME;
	for (size_t i = 0; i < plan->ncolumns; i++) {
		plan->column_names[i + 1] = plan->columns[i].name;
		plan->column_types[i + 1] = VG_COLUMN_FLOAT;
	}
	return 0;
}

/* ---- tag sets and groups ---------------------------------------------------- */

/* Parses canonical tag-set bytes into tag views (into the bytes). */
static size_t parse_tagset(vg_str_t key, vg_tag_t *tags)
{
	size_t n = 0, i = 0;
	while (i < key.len && n < VG_STORE_MAX_TAGS) {
		const char *k = key.data + i;
		size_t kl = strlen(k);
		const char *v = k + kl + 1;
		size_t vl = strlen(v);
		tags[n].key = (vg_str_t){k, kl};
		tags[n].value = (vg_str_t){v, vl};
		n++;
		i += kl + vl + 2;
	}
	return n;
}

static int encode_tags(vg_buf_t *b, const vg_tag_t *tags, size_t ntags)
{
	size_t len = 0;
	for (size_t i = 0; i < ntags; i++)
		len += tags[i].key.len + tags[i].value.len + 2;
	vg_buf_clear(b);
	if (vg_buf_reserve(b, len))
		return VG_ENOMEM;
	uint8_t *p = b->data;
	for (size_t i = 0; i < ntags; i++) {
		memcpy(p, tags[i].key.data, tags[i].key.len);
		p += tags[i].key.len;
		*p++ = 0;
		memcpy(p, tags[i].value.data, tags[i].value.len);
		p += tags[i].value.len;
		*p++ = 0;
	}
	b->len = len;
	return 0;
}

typedef struct ts_entry {
	vg_tagset_t ts;
	vg_str_t group_key;
	uint64_t hash;
	vg_series_id_t any_id; /* one series of the tag set */
} ts_entry_t;

static int ts_entry_cmp(const void *a, const void *b)
{
	const ts_entry_t *x = a, *y = b;
	int c = str_cmp(x->group_key, y->group_key);
	return c ? c : str_cmp(x->ts.key, y->ts.key);
}

/* Tag sets found so far, with an open-addressing index on their key. */
typedef struct ts_table {
	ts_entry_t *v;
	size_t len, cap;
	uint32_t *slots; /* entry index + 1; 0 = empty */
	size_t nslots;   /* a power of two, at least twice len */
} ts_table_t;

/* A multiply-xorshift hash over 8-byte words; only for the table. */
static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);
	uint64_t h = n * k;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	uint64_t w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * k;
	return h ^ (h >> 32);
}

static int table_grow(ts_table_t *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 64;
	uint32_t *slots = vg_calloc(nslots, sizeof *slots);
	if (!slots)
		return VG_ENOMEM;
	for (size_t i = 0; i < t->len; i++) {
		size_t j = t->v[i].hash & (nslots - 1);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = (uint32_t)i + 1;
	}
	vg_free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* The tag set with key bytes b, created if new. */
static int table_find(vg_plan_t *plan, ts_table_t *t, const vg_buf_t *b, vg_series_id_t id,
                      ts_entry_t **out)
{
	uint64_t h = hash_bytes(b->data, b->len);
	size_t j = t->nslots ? h & (t->nslots - 1) : 0;
	while (t->nslots && t->slots[j]) {
		ts_entry_t *e = &t->v[t->slots[j] - 1];
		if (e->hash == h && e->ts.key.len == b->len &&
		    memcmp(e->ts.key.data, b->data, b->len) == 0) {
			*out = e;
			return 0;
		}
		j = (j + 1) & (t->nslots - 1);
	}
	if ((t->len + 1) * 2 > t->nslots) {
		if (table_grow(t))
			return VG_ENOMEM;
		return table_find(plan, t, b, id, out);
	}
	if (t->len == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		ts_entry_t *v = vg_reallocarray(t->v, cap, sizeof *v);
		if (!v)
			return VG_ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	ts_entry_t *e = &t->v[t->len];
	memset(e, 0, sizeof *e);
	e->hash = h;
	e->any_id = id;
	e->ts.series = vg_arena_array(&plan->arena, plan->nfields, sizeof *e->ts.series);
	if (!e->ts.series ||
	    vg_arena_str(&plan->arena, b->len ? (const char *)b->data : "", b->len, &e->ts.key))
		return VG_ENOMEM;
	for (size_t f = 0; f < plan->nfields; f++)
		e->ts.series[f] = -1;
	t->slots[j] = (uint32_t)++t->len;
	*out = e;
	return 0;
}

/* The index of the needed field named f, or nfields. */
static size_t field_slot(const vg_plan_t *plan, vg_str_t f)
{
	size_t i = 0;
	while (i < plan->nfields && !str_eq(plan->fields[i].name, f))
		i++;
	return i;
}

/* Every series of the needed fields (cut to the condition's superset),
 * described and gathered into tag sets. */
static int collect_series(vg_exec_t *x, vg_plan_t *plan, const vg_idset_t *cut, bool all,
                          ts_table_t *table)
{
	const vg_select_t *sel = plan->sel;
	int code = 0;
	vg_idset_t fs = VG_IDSET_INIT, both = VG_IDSET_INIT;
	vg_buf_t key = VG_BUF_INIT;
	vg_series_desc_t *desc = vg_malloc(sizeof *desc);
	if (!desc)
		return nomem(x);
	/*
	 * A cut no larger than the number of needed fields (one series: host =
	 * 'h' AND metric = 'm') is described id by id, each series kept by its
	 * field: at most as many B-tree descents as probing each field's
	 * postings would take before describing the hits, and none in the field
	 * postings, which hold every series of the field.
	 */
	bool few = !all && cut->len <= plan->nfields;
	for (size_t f = 0; f < (few ? 1 : plan->nfields) && code == 0; f++) {
		const vg_idset_t *ids = few ? cut : all ? &fs : &both;
		if (!few)
			code = all ? vg_rtxn_field_series(x->txn, sel->measurement,
			                                  plan->fields[f].name, &fs)
			           : vg_rtxn_field_filter(x->txn, sel->measurement,
			                                  plan->fields[f].name, cut, &both);
		if (code) {
			code = vg_query_error_set(x->err, code, "series lookup failed: %s",
			                          vg_strerror(code));
			break;
		}
		for (size_t i = 0; i < ids->len; i++) {
			code = vg_rtxn_series_describe(x->txn, ids->ids[i], desc);
			if (code == VG_ENOTFOUND) {
				code = 0;
				continue;
			}
			if (code) {
				code = vg_query_error_set(x->err, code, "series lookup failed: %s",
				                          vg_strerror(code));
				break;
			}
			if ((i & 1023) == 1023 && (code = vg_exec_check(x)))
				break;
			size_t slot = f;
			if (few && (!str_eq(desc->measurement, sel->measurement) ||
			            (slot = field_slot(plan, desc->field)) == plan->nfields))
				continue; /* not a needed field's series */
			ts_entry_t *e;
			if (encode_tags(&key, desc->tags, desc->ntags) ||
			    table_find(plan, table, &key, ids->ids[i], &e)) {
				code = nomem(x);
				break;
			}
			e->ts.series[slot] = ids->ids[i];
		}
	}
	vg_free(desc);
	vg_buf_release(&key);
	vg_idset_release(&fs);
	vg_idset_release(&both);
	return code;
}

static int group_key_of(vg_plan_t *plan, const vg_tag_t *tags, size_t ntags, vg_str_t *out)
{
	size_t len = 0;
	const vg_str_t empty = {"", 0};
	vg_str_t vals[VG_STORE_MAX_TAGS];
	vg_str_t *v = plan->ngroup_keys <= VG_STORE_MAX_TAGS
	                  ? vals
	                  : vg_arena_array(&plan->arena, plan->ngroup_keys, sizeof *v);
	if (!v)
		return VG_ENOMEM;
	for (size_t k = 0; k < plan->ngroup_keys; k++) {
		v[k] = empty;
		for (size_t i = 0; i < ntags; i++)
			if (str_eq(tags[i].key, plan->group_keys[k]))
				v[k] = tags[i].value;
		len += v[k].len + 1;
	}
	char *p = vg_arena_alloc(&plan->arena, len + 1);
	if (!p)
		return VG_ENOMEM;
	size_t o = 0;
	for (size_t k = 0; k < plan->ngroup_keys; k++) {
		if (v[k].len)
			memcpy(p + o, v[k].data, v[k].len);
		o += v[k].len;
		p[o++] = 0;
	}
	*out = (vg_str_t){p, len};
	return 0;
}

/* Keeps the tag sets that can produce rows, orders them by group and
 * tag-set order, and forms the groups. */
static int build_tagsets(vg_exec_t *x, vg_plan_t *plan, ts_table_t *table)
{
	size_t kept = 0;
	vg_tag_t tags[VG_STORE_MAX_TAGS];
	for (size_t i = 0; i < table->len; i++) {
		ts_entry_t *e = &table->v[i];
		vg_tagset_t *ts = &e->ts;
		bool has_selected = false;
		for (size_t f = 0; f < plan->nfields; f++)
			has_selected |= ts->series[f] >= 0 && plan->fields[f].selected;
		ts->residual = VG_TRI_TRUE;
		if (plan->prog) {
			ts->tag_truth =
			    vg_arena_array(&plan->arena, plan->ntag_leaves ? plan->ntag_leaves : 1,
			                   sizeof *ts->tag_truth);
			if (!ts->tag_truth)
				return nomem(x);
			for (size_t l = 0; l < plan->ntag_leaves; l++)
				ts->tag_truth[l] = vg_idset_contains(&plan->tag_sets[l], e->any_id);
			ts->residual = tri_eval(plan, plan->prog_root, ts->tag_truth);
		}
		if (!has_selected || ts->residual == VG_TRI_FALSE)
			continue;
		ts->ntags = parse_tagset(ts->key, tags);
		ts->tags =
		    vg_arena_array(&plan->arena, ts->ntags ? ts->ntags : 1, sizeof *ts->tags);
		if (!ts->tags || group_key_of(plan, tags, ts->ntags, &e->group_key))
			return nomem(x);
		memcpy((vg_tag_t *)ts->tags, tags, ts->ntags * sizeof *tags);
		for (size_t f = 0; f < plan->nfields && x->stats; f++)
			x->stats->series_matched += ts->series[f] >= 0;
		table->v[kept++] = *e;
	}
	if (kept > 1)
		qsort(table->v, kept, sizeof *table->v, ts_entry_cmp);
	plan->tagsets = vg_arena_array(&plan->arena, kept ? kept : 1, sizeof *plan->tagsets);
	plan->groups = vg_arena_array(&plan->arena, kept ? kept : 1, sizeof *plan->groups);
	if (!plan->tagsets || !plan->groups)
		return nomem(x);
	for (size_t i = 0; i < kept; i++) {
		plan->tagsets[i] = table->v[i].ts;
		if (i == 0 || !str_eq(table->v[i].group_key, table->v[i - 1].group_key)) {
			vg_group_t *g = &plan->groups[plan->ngroups++];
			g->first = i;
			g->count = 0;
			g->ntags = plan->ngroup_keys;
			g->tags =
			    vg_arena_array(&plan->arena, g->ntags ? g->ntags : 1, sizeof *g->tags);
			if (!g->tags)
				return nomem(x);
			/* Values are views into the group key bytes. */
			const char *p = table->v[i].group_key.data;
			for (size_t k = 0; k < g->ntags; k++) {
				size_t l = strlen(p);
				g->tags[k].key = plan->group_keys[k];
				g->tags[k].value = (vg_str_t){p, l};
				p += l + 1;
			}
		}
		plan->groups[plan->ngroups - 1].count++;
		plan->tagsets[i].group = plan->ngroups - 1;
	}
	plan->ntagsets = kept;
	return 0;
}

/* ---- the plan ---------------------------------------------------------------- */

int64_t vg_bucket_start(int64_t t, int64_t interval, int64_t offset)
{
	int64_t rem = t % interval;
	if (rem < 0)
		rem += interval;
	int64_t d = rem - offset;
	if (d < 0)
		d += interval;
	/* t - d, saturating at the bottom of the range. */
	return t < INT64_MIN + d ? INT64_MIN : t - d;
}

static const char *fill_name(vg_fill_mode_t fill)
{
	switch (fill) {
	case VG_FILL_NULL:
		return "null";
	case VG_FILL_PREVIOUS:
		return "previous";
	case VG_FILL_LINEAR:
		return "linear";
	default:
		return "<number>";
	}
}

int vg_plan_build(vg_exec_t *x, const vg_select_t *sel, vg_plan_t *plan)
{
	memset(plan, 0, sizeof *plan);
	vg_arena_init(&plan->arena);
	plan->sel = sel;
	int code = vg_select_time_range(sel, x->opts.now_ns, &plan->t0, &plan->t1);
	if (code)
		return vg_query_error_set(x->err, VG_EINVAL, "a time in WHERE is out of range");
	if (x->opts.select_only) {
		if (plan->t0 < x->opts.range_t0)
			plan->t0 = x->opts.range_t0;
		if (plan->t1 > x->opts.range_t1)
			plan->t1 = x->opts.range_t1;
	}
	plan->has_lower = plan->t0 != INT64_MIN;
	if (sel->interval_ns && sel->fill != VG_FILL_NONE) {
		if (!plan->has_lower)
			return vg_query_error_set(x->err, VG_EINVAL,
			                          "FILL(%s) needs a lower time bound "
			                          "(WHERE time >= ...)",
			                          fill_name(sel->fill));
		if (plan->t1 == INT64_MAX)
			plan->t1 = x->opts.now_ns == INT64_MAX ? INT64_MAX : x->opts.now_ns + 1;
		if (plan->t0 < plan->t1) {
			plan->fill_lo = vg_bucket_start(plan->t0, sel->interval_ns, sel->offset_ns);
			plan->fill_hi =
			    vg_bucket_start(plan->t1 - 1, sel->interval_ns, sel->offset_ns);
		}
	}
	bool exists;
	code = vg_rtxn_measurement_exists(x->txn, sel->measurement, &exists);
	if (code)
		return vg_query_error_set(x->err, code, "series lookup failed: %s",
		                          vg_strerror(code));
	if (!exists)
		return vg_query_error_set(x->err, VG_ENOTFOUND, "measurement '%.*s' not found",
		                          (int)sel->measurement.len, sel->measurement.data);
	size_t fcap = 0;
	code = plan_columns(x, sel, plan, &fcap);
	if (code)
		return code;
	/* The condition. */
	vg_idset_t cut = VG_IDSET_INIT;
	bool all = true;
	if (sel->where) {
		size_t leaves = 0;
		size_t nodes = count_nodes(sel->where, &leaves);
		plan->prog = vg_arena_array(&plan->arena, nodes, sizeof *plan->prog);
		plan->tag_sets = vg_calloc(leaves ? leaves : 1, sizeof *plan->tag_sets);
		if (!plan->prog || !plan->tag_sets)
			return nomem(x);
		int leaf = 0;
		code = compile(x, plan, sel->where, &fcap, &leaf, &plan->prog_root);
		tagres_t r = {x, sel->measurement, plan->tag_sets, 0};
		code = code ? code : superset(&r, sel->where, &cut, &all);
		plan->ntag_leaves = r.nleaves;
	}
	/* Group keys. */
	if (code == 0 && sel->group_all_tags) {
		vg_name_list_t keys = {&plan->arena, NULL, 0, 0};
		code = vg_rtxn_list_tag_keys(x->txn, sel->measurement, vg_name_list_add, &keys);
		if (code)
			code = code == VG_ENOMEM
			           ? nomem(x)
			           : vg_query_error_set(x->err, code, "listing tag keys failed: %s",
			                                vg_strerror(code));
		plan->group_keys = keys.v;
		plan->ngroup_keys = keys.len;
	} else if (code == 0) {
		plan->group_keys = sel->group_tags;
		plan->ngroup_keys = sel->ngroup_tags;
	}
	ts_table_t table = {0};
	if (code == 0)
		code = collect_series(x, plan, &cut, all, &table);
	vg_idset_release(&cut);
	if (code == 0)
		code = build_tagsets(x, plan, &table);
	vg_free(table.v);
	vg_free(table.slots);
	return code;
}

void vg_plan_release(vg_plan_t *plan)
{
	if (plan->tag_sets) {
		for (size_t i = 0; i < plan->ntag_leaves; i++)
			vg_idset_release(&plan->tag_sets[i]);
		vg_free(plan->tag_sets);
	}
	vg_arena_release(&plan->arena);
	memset(plan, 0, sizeof *plan);
}
