/*
 * test_exec_property.c — SELECT execution against a brute-force reference.
 *
 * A random measurement (tag sets with and without each tag, fields missing
 * from some tag sets) is written in batches with irregular, out-of-order
 * and repeated times, NaN values, and seals between batches, so that
 * queries meet sealed chunks (whole ones read from headers, partial ones
 * decoded), chunks overlapping unsealed points, and head-only data.  The
 * test keeps its own copy of the data (last write wins), generates random
 * SELECTs — raw and aggregate, GROUP BY time with offsets and tags, every
 * FILL, tag/field/time conditions under AND and OR, ORDER BY time DESC,
 * LIMIT, small result blocks — and checks every result set, row, null and
 * value against an evaluator written here from the rules of vg_query.h,
 * sharing no code with the executor.
 */
#include "collect.h"

#include <regex.h>

#define NTS 7
#define NF 3
#define T0 INT64_C(1000000)
#define SPAN 100000
#define NOW (T0 + 70000)

static const char *const fnames[4] = {"a", "b", "c", "z"};

typedef struct pt {
	int64_t t;
	double v;
	uint64_t seq;
} pt_t;

typedef struct gts {
	char host[8], dc[8]; /* "" = no such tag */
	char key[64];        /* canonical: dc\0v\0host\0v\0 (keys sorted) */
	size_t keylen;
	bool has[NF];
	pt_t *pts[NF];
	size_t npts[NF], cap[NF];
} gts_t;

static gts_t ts[NTS];
static size_t order[NTS]; /* tag sets sorted by key */

/* ---- data ------------------------------------------------------------------ */

static int cmp_pt(const void *a, const void *b)
{
	const pt_t *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_key(const void *a, const void *b)
{
	const gts_t *x = &ts[*(const size_t *)a], *y = &ts[*(const size_t *)b];
	size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

static double gen_value(vg_test_rng_t *rng)
{
	if (vg_test_below(rng, 20) == 0)
		return NAN;
	return (double)((int64_t)vg_test_below(rng, 2001) - 1000) / 10.0;
}

static void populate(vg_store_t *store, vg_test_rng_t *rng)
{
	memset(ts, 0, sizeof ts);
	static const char *hosts[] = {"h0", "h1", "h2", "h3"}, *dcs[] = {"eu", "us"};
	for (size_t i = 0; i < NTS; i++) {
		gts_t *g = &ts[i];
		for (;;) {
			g->host[0] = g->dc[0] = 0;
			if (i == 0 || vg_test_below(rng, 5))
				strcpy(g->host, hosts[vg_test_below(rng, 4)]);
			if (i == 0 || vg_test_below(rng, 4))
				strcpy(g->dc, dcs[vg_test_below(rng, 2)]);
			bool dup = false;
			for (size_t j = 0; j < i; j++)
				dup |= !strcmp(ts[j].host, g->host) && !strcmp(ts[j].dc, g->dc);
			if (!dup)
				break;
		}
		size_t n = 0;
		if (g->dc[0]) {
			memcpy(g->key + n, "dc\0", 3);
			n += 3;
			memcpy(g->key + n, g->dc, strlen(g->dc) + 1);
			n += strlen(g->dc) + 1;
		}
		if (g->host[0]) {
			memcpy(g->key + n, "host\0", 5);
			n += 5;
			memcpy(g->key + n, g->host, strlen(g->host) + 1);
			n += strlen(g->host) + 1;
		}
		g->keylen = n;
		bool any = false;
		for (int f = 0; f < NF; f++) {
			g->has[f] = i == 0 || vg_test_below(rng, 3) > 0;
			any |= g->has[f];
		}
		if (!any)
			g->has[vg_test_below(rng, NF)] = true;
		order[i] = i;
	}
	qsort(order, NTS, sizeof order[0], cmp_key);
	uint64_t seq = 0;
	int64_t *times = malloc(4000 * sizeof *times);
	double *values = malloc(4000 * sizeof *values);
	for (int batch = 0; batch < 4; batch++) {
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		for (size_t i = 0; i < NTS; i++) {
			gts_t *g = &ts[i];
			vg_tag_t tags[2];
			size_t ntags = 0;
			if (g->host[0])
				tags[ntags++] = (vg_tag_t){{"host", 4}, {g->host, strlen(g->host)}};
			if (g->dc[0])
				tags[ntags++] = (vg_tag_t){{"dc", 2}, {g->dc, strlen(g->dc)}};
			for (int f = 0; f < NF; f++) {
				/* The last batch leaves some series wholly sealed. */
				if (!g->has[f] || (batch == 3 && vg_test_below(rng, 2)))
					continue;
				vg_series_key_t key = {{"m", 1}, tags, ntags, {fnames[f], 1}};
				vg_series_id_t id;
				cr_assert_eq(vg_wtxn_series(txn, &key, &id, NULL), 0);
				size_t n = 20 + vg_test_below(rng, batch == 1 ? 2500 : 600);
				/* A dense stretch or points anywhere in the span. */
				int64_t base = T0 + (int64_t)vg_test_below(rng, SPAN);
				bool dense = vg_test_below(rng, 4) > 0;
				for (size_t k = 0; k < n; k++) {
					int64_t t =
					    dense
					        ? base + (int64_t)(k * (1 + vg_test_below(rng, 40)))
					        : T0 + (int64_t)vg_test_below(rng, SPAN);
					if (t >= T0 + SPAN)
						t = T0 + (int64_t)vg_test_below(rng, SPAN);
					times[k] = t;
					values[k] = gen_value(rng);
					if (g->npts[f] == g->cap[f]) {
						g->cap[f] = g->cap[f] ? g->cap[f] * 2 : 1024;
						g->pts[f] =
						    realloc(g->pts[f], g->cap[f] * sizeof(pt_t));
					}
					g->pts[f][g->npts[f]++] = (pt_t){t, values[k], seq++};
				}
				cr_assert_eq(vg_wtxn_put(txn, id, times, values, n), 0);
			}
		}
		cr_assert_eq(vg_wtxn_commit(txn), 0);
		if (batch < 3)
			cr_assert_eq(vg_store_seal(store, batch == 1 ? 300 : 1), 0);
	}
	free(times);
	free(values);
	/* Last write wins. */
	for (size_t i = 0; i < NTS; i++)
		for (int f = 0; f < NF; f++) {
			gts_t *g = &ts[i];
			if (g->npts[f])
				qsort(g->pts[f], g->npts[f], sizeof(pt_t), cmp_pt);
			size_t n = 0;
			for (size_t k = 0; k < g->npts[f]; k++) {
				if (n > 0 && g->pts[f][n - 1].t == g->pts[f][k].t)
					n--;
				g->pts[f][n++] = g->pts[f][k];
			}
			g->npts[f] = n;
		}
}

static void free_data(void)
{
	for (size_t i = 0; i < NTS; i++)
		for (int f = 0; f < NF; f++)
			free(ts[i].pts[f]);
}

/* ---- queries ---------------------------------------------------------------- */

enum {
	A_RAW = 0,
	A_COUNT,
	A_SUM,
	A_MIN,
	A_MAX,
	A_MEAN,
	A_FIRST,
	A_LAST,
	A_SPREAD,
	A_STDDEV,
	A_MEDIAN,
	A_PERCENTILE,
	A_RATE,
	A_N
};
static const char *const anames[A_N] = {"",       "count",      "sum",  "min",    "max",
                                        "mean",   "first",      "last", "spread", "stddev",
                                        "median", "percentile", "rate"};

enum { N_TAG, N_FIELD, N_AND, N_OR };
enum { OP_EQ, OP_NE, OP_RE, OP_NRE, OP_LT, OP_LE, OP_GT, OP_GE };

typedef struct qnode {
	int kind, op;
	int key; /* 0 host, 1 dc */
	char str[16];
	regex_t re;
	int field;
	double num;
	int l, r;
} qnode_t;

typedef struct qcol {
	int agg, field;
	double p;
	int64_t unit;
} qcol_t;

typedef struct query {
	qcol_t cols[4];
	int ncols;
	bool star;
	qnode_t nodes[16];
	int nnodes, root;
	bool has_lo, lo_incl, has_hi, hi_incl, eq;
	int64_t lo, hi;
	int64_t interval, offset;
	int group; /* 0 none, 1 host, 2 dc, 3 host,dc, 4 dc,host, 5 * */
	int fill;  /* 0 none, 1 null, 2 previous, 3 linear, 4 value */
	double fill_value;
	bool desc;
	uint64_t limit;
	char text[1024];
} query_t;

static void app(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void app(char *buf, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, 1024 - n, fmt, ap);
	va_end(ap);
}

static int gen_cond(query_t *q, vg_test_rng_t *rng, int depth)
{
	int i = q->nnodes++;
	qnode_t *n = &q->nodes[i];
	memset(n, 0, sizeof *n);
	if (depth < 2 && vg_test_below(rng, 3) == 0) {
		n->kind = vg_test_below(rng, 2) ? N_AND : N_OR;
		int l = gen_cond(q, rng, depth + 1);
		int r = gen_cond(q, rng, depth + 1);
		q->nodes[i].l = l;
		q->nodes[i].r = r;
		return i;
	}
	if (vg_test_below(rng, 2)) {
		static const char *vals[] = {"h0", "h1", "h2", "eu", "us", "", "zz"};
		static const char *res[] = {"^h[01]$", "u", "^$", ".", "^(eu|h3)$", "2"};
		n->kind = N_TAG;
		n->key = (int)vg_test_below(rng, 2);
		n->op = (int)vg_test_below(rng, 4);
		if (n->op <= OP_NE) {
			strcpy(n->str, vals[vg_test_below(rng, 7)]);
		} else {
			strcpy(n->str, res[vg_test_below(rng, 6)]);
			cr_assert_eq(regcomp(&n->re, n->str, REG_EXTENDED | REG_NOSUB), 0);
		}
	} else {
		n->kind = N_FIELD;
		n->field = (int)vg_test_below(rng, 4);
		n->op = (int)vg_test_below(rng, 6);
		n->op = n->op < 2 ? n->op : n->op + 2; /* EQ NE LT LE GT GE */
		n->num = (double)((int64_t)vg_test_below(rng, 201) - 100);
	}
	return i;
}

static void cond_text(const query_t *q, int i, char *buf)
{
	const qnode_t *n = &q->nodes[i];
	static const char *ops[] = {"=", "!=", "=~", "!~", "<", "<=", ">", ">="};
	if (n->kind == N_AND || n->kind == N_OR) {
		app(buf, "(");
		cond_text(q, n->l, buf);
		app(buf, n->kind == N_AND ? " AND " : " OR ");
		cond_text(q, n->r, buf);
		app(buf, ")");
	} else if (n->kind == N_TAG) {
		const char *key = n->key ? "dc" : "host";
		if (n->op <= OP_NE)
			app(buf, "%s %s '%s'", key, ops[n->op], n->str);
		else
			app(buf, "%s %s /%s/", key, ops[n->op], n->str);
	} else {
		app(buf, "%s %s %g", fnames[n->field], ops[n->op], n->num);
	}
}

/* headers: aggregates that chunk headers answer, wide or no buckets, raw
 * queries with small limits, tag conditions only — the profile that
 * exercises vg_cursor_skip_chunk. */
static void gen_query(query_t *q, vg_test_rng_t *rng, bool headers)
{
	memset(q, 0, sizeof *q);
	bool agg = vg_test_below(rng, 3) > 0;
	q->ncols = 1 + (int)vg_test_below(rng, 3);
	if (!agg && vg_test_below(rng, 5) == 0) {
		q->star = true;
		q->ncols = 0;
	}
	for (int c = 0; c < q->ncols; c++) {
		qcol_t *col = &q->cols[c];
		col->field = vg_test_below(rng, 12) == 0 ? 3 : (int)vg_test_below(rng, 3);
		col->agg = agg ? 1 + (int)vg_test_below(rng, A_N - 1) : A_RAW;
		if (headers &&
		    (col->agg == A_STDDEV || col->agg == A_MEDIAN || col->agg == A_PERCENTILE))
			col->agg = A_MEAN;
		col->p = (double)vg_test_below(rng, 101);
		if (vg_test_below(rng, 4) == 0)
			col->p = 0.5 + (double)vg_test_below(rng, 100);
		col->unit = vg_test_below(rng, 2) ? 1000000000 : 1000;
	}
	q->root = vg_test_below(rng, 3) ? gen_cond(q, rng, 0) : -1;
	for (int i = 0; headers && i < q->nnodes; i++)
		if (q->nodes[i].kind == N_FIELD) {
			q->nodes[i].kind = N_TAG;
			q->nodes[i].op = OP_NE;
			strcpy(q->nodes[i].str, "h2");
		}
	/* Time: lower and upper bounds, or an equality. */
	if (vg_test_below(rng, 20) == 0) {
		q->eq = true;
		q->lo = T0 + (int64_t)vg_test_below(rng, SPAN);
	} else {
		q->has_lo = vg_test_below(rng, 3) > 0;
		q->has_hi = vg_test_below(rng, 2) > 0;
		q->lo = T0 - 1000 + (int64_t)vg_test_below(rng, SPAN + 2000);
		q->hi = q->lo + (int64_t)vg_test_below(rng, SPAN);
		if (vg_test_below(rng, 10) == 0)
			q->hi = q->lo - 5;
		q->lo_incl = vg_test_below(rng, 2);
		q->hi_incl = vg_test_below(rng, 2);
	}
	if (agg && vg_test_below(rng, 4) > (headers ? 1 : 0)) {
		static const int64_t ivs[] = {1000, 3000, 7000, 25000, 60000, 200000};
		q->interval = ivs[headers ? 4 + vg_test_below(rng, 2) : vg_test_below(rng, 6)];
		if (vg_test_below(rng, 2))
			q->offset =
			    (int64_t)vg_test_below(rng, (uint64_t)q->interval * 2) - q->interval;
		if ((q->has_lo || q->eq) && vg_test_below(rng, 2)) {
			q->fill = 1 + (int)vg_test_below(rng, 4);
			q->fill_value = (double)((int64_t)vg_test_below(rng, 21) - 10);
		}
	}
	q->group = (int)vg_test_below(rng, 6);
	q->desc = vg_test_below(rng, 3) == 0;
	q->limit = vg_test_below(rng, 3) == 0 ? 1 + vg_test_below(rng, 6) : 0;
	if (headers && !agg)
		q->limit = 1 + vg_test_below(rng, 3); /* chunk edges from headers */

	char *t = q->text;
	t[0] = 0;
	app(t, "SELECT ");
	if (q->star)
		app(t, "*");
	for (int c = 0; c < q->ncols; c++) {
		const qcol_t *col = &q->cols[c];
		if (c)
			app(t, ", ");
		if (col->agg == A_RAW)
			app(t, "%s", fnames[col->field]);
		else if (col->agg == A_PERCENTILE)
			app(t, "percentile(%s, %g)", fnames[col->field], col->p);
		else if (col->agg == A_RATE && col->unit == 1000)
			app(t, "rate(%s, 1us)", fnames[col->field]);
		else
			app(t, "%s(%s)", anames[col->agg], fnames[col->field]);
	}
	app(t, " FROM m");
	bool where = false;
	if (q->root >= 0) {
		app(t, " WHERE ");
		cond_text(q, q->root, t);
		where = true;
	}
	if (q->eq) {
		app(t, where ? " AND time = %lld" : " WHERE time = %lld", (long long)q->lo);
		where = true;
	}
	if (q->has_lo) {
		app(t, where ? " AND time %s %lld" : " WHERE time %s %lld", q->lo_incl ? ">=" : ">",
		    (long long)q->lo);
		where = true;
	}
	if (q->has_hi)
		app(t, where ? " AND time %s %lld" : " WHERE time %s %lld", q->hi_incl ? "<=" : "<",
		    (long long)q->hi);
	static const char *groups[] = {"", "host", "dc", "host, dc", "dc, host", "*"};
	if (q->interval || q->group) {
		app(t, " GROUP BY ");
		if (q->interval) {
			if (q->offset)
				app(t, "time(%lldns, %lldns)", (long long)q->interval,
				    (long long)q->offset);
			else
				app(t, "time(%lldns)", (long long)q->interval);
		}
		if (q->group)
			app(t, "%s%s", q->interval ? ", " : "", groups[q->group]);
	}
	static const char *fills[] = {"none", "null", "previous", "linear"};
	if (q->fill == 4)
		app(t, " FILL(%g)", q->fill_value);
	else if (q->fill)
		app(t, " FILL(%s)", fills[q->fill]);
	if (q->desc)
		app(t, " ORDER BY time DESC");
	if (q->limit)
		app(t, " LIMIT %llu", (unsigned long long)q->limit);
}

static void free_query(query_t *q)
{
	for (int i = 0; i < q->nnodes; i++)
		if (q->nodes[i].kind == N_TAG && q->nodes[i].op >= OP_RE)
			regfree(&q->nodes[i].re);
}

/* ---- the reference evaluator --------------------------------------------------- */

static bool cmp_num(double a, int op, double b)
{
	switch (op) {
	case OP_EQ:
		return a == b;
	case OP_NE:
		return a != b;
	case OP_LT:
		return a < b;
	case OP_LE:
		return a <= b;
	case OP_GT:
		return a > b;
	default:
		return a >= b;
	}
}

static bool eval(const query_t *q, int i, const gts_t *g, const double *v, const bool *has)
{
	const qnode_t *n = &q->nodes[i];
	switch (n->kind) {
	case N_AND:
		return eval(q, n->l, g, v, has) && eval(q, n->r, g, v, has);
	case N_OR:
		return eval(q, n->l, g, v, has) || eval(q, n->r, g, v, has);
	case N_TAG: {
		const char *val = n->key ? g->dc : g->host;
		bool m = n->op <= OP_NE ? strcmp(val, n->str) == 0
		                        : regexec(&n->re, val, 0, NULL, 0) == 0;
		return (n->op == OP_EQ || n->op == OP_RE) ? m : !m;
	}
	default:
		return n->field < NF && has[n->field] && cmp_num(v[n->field], n->op, n->num);
	}
}

typedef struct row {
	int64_t t;
	size_t rank;
	double v[NF];
	bool has[NF];
} row_t;

/* Rows of tag set g in [t0, t1) that satisfy the condition. */
static size_t rows_of(const query_t *q, const gts_t *g, size_t rank, int64_t t0, int64_t t1,
                      row_t *out)
{
	size_t pos[NF] = {0}, n = 0;
	for (int f = 0; f < NF; f++)
		while (pos[f] < g->npts[f] && g->pts[f][pos[f]].t < t0)
			pos[f]++;
	for (;;) {
		int64_t t = INT64_MAX;
		bool any = false;
		for (int f = 0; f < NF; f++)
			if (pos[f] < g->npts[f] && g->pts[f][pos[f]].t < t1) {
				any = true;
				if (g->pts[f][pos[f]].t < t)
					t = g->pts[f][pos[f]].t;
			}
		if (!any)
			break;
		row_t r = {t, rank, {0}, {0}};
		for (int f = 0; f < NF; f++)
			if (pos[f] < g->npts[f] && g->pts[f][pos[f]].t == t) {
				r.v[f] = g->pts[f][pos[f]].v;
				r.has[f] = true;
				pos[f]++;
			}
		if (q->root < 0 || eval(q, q->root, g, r.v, r.has))
			out[n++] = r;
	}
	return n;
}

typedef struct exp_set {
	char gk[64]; /* group key bytes */
	size_t gklen;
	const char *tagv[2];
	size_t nrows;
	int64_t *times;
	double *vals;
	bool *nulls;
} exp_set_t;

static int cmp_row(const void *a, const void *b)
{
	const row_t *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_row_desc(const void *a, const void *b)
{
	const row_t *x = a, *y = b;
	if (x->t != y->t)
		return x->t > y->t ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* One aggregate over the points (t, v, rank) of a field in a bucket. */
static bool agg_value(const qcol_t *col, const row_t *rows, size_t n, double *out)
{
	int f = col->field;
	size_t total = 0, cnt = 0;
	double *vals = malloc((n + 1) * sizeof *vals);
	const row_t *first = NULL, *last = NULL;
	for (size_t i = 0; i < n; i++) {
		if (f >= NF || !rows[i].has[f])
			continue;
		total++;
		double v = rows[i].v[f];
		if (isnan(v))
			continue;
		vals[cnt++] = v;
		if (!first || rows[i].t < first->t ||
		    (rows[i].t == first->t && rows[i].rank < first->rank))
			first = &rows[i];
		if (!last || rows[i].t > last->t ||
		    (rows[i].t == last->t && rows[i].rank < last->rank))
			last = &rows[i];
	}
	bool ok = true;
	double sum = 0, mn = INFINITY, mx = -INFINITY;
	for (size_t i = 0; i < cnt; i++) {
		sum += vals[i];
		mn = vals[i] < mn ? vals[i] : mn;
		mx = vals[i] > mx ? vals[i] : mx;
	}
	if (col->agg == A_COUNT) {
		*out = (double)cnt;
		ok = total > 0;
	} else if (cnt == 0) {
		ok = false;
	} else {
		switch (col->agg) {
		case A_SUM:
			*out = sum;
			break;
		case A_MIN:
			*out = mn;
			break;
		case A_MAX:
			*out = mx;
			break;
		case A_MEAN:
			*out = sum / (double)cnt;
			break;
		case A_FIRST:
			*out = first->v[f];
			break;
		case A_LAST:
			*out = last->v[f];
			break;
		case A_SPREAD:
			*out = mx - mn;
			break;
		case A_STDDEV: {
			if (cnt < 2) {
				ok = false;
				break;
			}
			double mean = sum / (double)cnt, ss = 0;
			for (size_t i = 0; i < cnt; i++)
				ss += (vals[i] - mean) * (vals[i] - mean);
			*out = sqrt(ss / (double)(cnt - 1));
			break;
		}
		case A_MEDIAN:
			qsort(vals, cnt, sizeof *vals, cmp_dbl);
			*out = cnt % 2 ? vals[cnt / 2] : (vals[cnt / 2 - 1] + vals[cnt / 2]) / 2;
			break;
		case A_PERCENTILE: {
			qsort(vals, cnt, sizeof *vals, cmp_dbl);
			long k = (long)floor((double)cnt * col->p / 100.0 + 0.5) - 1;
			if (k < 0 || k >= (long)cnt)
				ok = false;
			else
				*out = vals[k];
			break;
		}
		case A_RATE:
			if (cnt < 2 || last->t == first->t)
				ok = false;
			else
				*out = (last->v[f] - first->v[f]) / (double)(last->t - first->t) *
				       (double)col->unit;
			break;
		default:
			ok = false;
		}
	}
	free(vals);
	return ok;
}

static int cmp_set(const void *a, const void *b)
{
	const exp_set_t *x = a, *y = b;
	size_t n = x->gklen < y->gklen ? x->gklen : y->gklen;
	int c = memcmp(x->gk, y->gk, n);
	return c ? c : (x->gklen > y->gklen) - (x->gklen < y->gklen);
}

typedef struct expected {
	exp_set_t *sets;
	size_t nsets;
	const char *tagk[2];
	size_t ntagk;
	char cols[8][32];
	size_t ncols;
	qcol_t ecols[8]; /* star expanded */
} expected_t;

static void evaluate(const query_t *q, expected_t *e)
{
	memset(e, 0, sizeof *e);
	int64_t t0 = INT64_MIN, t1 = INT64_MAX;
	if (q->eq) {
		t0 = q->lo;
		t1 = q->lo + 1;
	}
	if (q->has_lo)
		t0 = q->lo_incl ? q->lo : q->lo + 1;
	if (q->has_hi)
		t1 = q->hi_incl ? q->hi + 1 : q->hi;
	if (q->fill && !q->has_hi && !q->eq)
		t1 = NOW + 1;
	/* Columns. */
	size_t nc = 0;
	if (q->star) {
		for (int f = 0; f < NF; f++)
			e->ecols[nc++] = (qcol_t){A_RAW, f, 0, 0};
	}
	for (int c = 0; c < q->ncols; c++)
		e->ecols[nc++] = q->cols[c];
	e->ncols = nc;
	for (size_t c = 0; c < nc; c++) {
		char base[20];
		if (e->ecols[c].agg == A_RAW)
			snprintf(base, sizeof base, "%s", fnames[e->ecols[c].field]);
		else
			snprintf(base, sizeof base, "%s_%s", anames[e->ecols[c].agg],
			         fnames[e->ecols[c].field]);
		snprintf(e->cols[c], 32, "%s", base);
		for (int k = 1;; k++) {
			bool taken = false;
			for (size_t j = 0; j < c; j++)
				taken |= !strcmp(e->cols[j], e->cols[c]);
			if (!taken)
				break;
			snprintf(e->cols[c], 32, "%s_%d", base, k % 1000);
		}
	}
	/* Group keys: GROUP BY * is every tag key, sorted. */
	static const int gmap[6][3] = {{0}, {1, 0}, {1, 1}, {2, 0, 1}, {2, 1, 0}, {2, 1, 0}};
	e->ntagk = (size_t)gmap[q->group][0];
	for (size_t k = 0; k < e->ntagk; k++)
		e->tagk[k] = gmap[q->group][1 + k] ? "dc" : "host";
	/* Tag sets in key order, grouped. */
	row_t *all = malloc(sizeof(row_t) * 40000);
	for (size_t oi = 0; oi < NTS; oi++) {
		size_t i = order[oi];
		const gts_t *g = &ts[i];
		char gk[64];
		size_t gklen = 0;
		const char *tv[2] = {"", ""};
		for (size_t k = 0; k < e->ntagk; k++) {
			const char *v = !strcmp(e->tagk[k], "dc") ? g->dc : g->host;
			tv[k] = v;
			memcpy(gk + gklen, v, strlen(v) + 1);
			gklen += strlen(v) + 1;
		}
		exp_set_t *set = NULL;
		for (size_t s = 0; s < e->nsets; s++)
			if (e->sets[s].gklen == gklen && !memcmp(e->sets[s].gk, gk, gklen))
				set = &e->sets[s];
		if (!set) {
			e->sets = realloc(e->sets, (e->nsets + 1) * sizeof *e->sets);
			set = &e->sets[e->nsets++];
			memset(set, 0, sizeof *set);
			memcpy(set->gk, gk, gklen);
			set->gklen = gklen;
			set->tagv[0] = tv[0];
			set->tagv[1] = tv[1];
		}
		(void)set;
	}
	qsort(e->sets, e->nsets, sizeof *e->sets, cmp_set);
	/* Rows per group, then the group's output. */
	for (size_t s = 0; s < e->nsets; s++) {
		exp_set_t *set = &e->sets[s];
		size_t nrows = 0;
		for (size_t oi = 0; oi < NTS; oi++) {
			const gts_t *g = &ts[order[oi]];
			char gk[64];
			size_t gklen = 0;
			for (size_t k = 0; k < e->ntagk; k++) {
				const char *v = !strcmp(e->tagk[k], "dc") ? g->dc : g->host;
				memcpy(gk + gklen, v, strlen(v) + 1);
				gklen += strlen(v) + 1;
			}
			if (gklen != set->gklen || memcmp(gk, set->gk, gklen))
				continue;
			if (t0 < t1)
				nrows += rows_of(q, g, oi, t0, t1, all + nrows);
		}
		size_t cap = nrows + 16;
		bool agg = e->ecols[0].agg != A_RAW;
		size_t nb = 0;
		int64_t *bstart = NULL;
		if (agg && q->interval) {
			int64_t off = q->offset % q->interval;
			if (off < 0)
				off += q->interval;
			/* Buckets with data, then the fill range. */
			int64_t blo = 0, bhi = 0;
			bool any = false;
			for (size_t r = 0; r < nrows; r++) {
				bool sel = false;
				for (size_t c = 0; c < nc; c++)
					sel |=
					    e->ecols[c].field < NF && all[r].has[e->ecols[c].field];
				if (!sel)
					continue;
				int64_t b =
				    floor_div(all[r].t - off, q->interval) * q->interval + off;
				if (!any || b < blo)
					blo = b;
				if (!any || b > bhi)
					bhi = b;
				any = true;
			}
			if (any && q->fill) {
				blo = floor_div(t0 - off, q->interval) * q->interval + off;
				bhi = floor_div(t1 - 1 - off, q->interval) * q->interval + off;
			}
			if (any) {
				nb = (size_t)((bhi - blo) / q->interval) + 1;
				bstart = malloc(nb * sizeof *bstart);
				for (size_t b = 0; b < nb; b++)
					bstart[b] = blo + (int64_t)b * q->interval;
			}
			cap = nb + 1;
		}
		set->times = malloc(cap * sizeof(int64_t));
		set->vals = malloc(cap * (nc + 1) * sizeof(double));
		set->nulls = malloc(cap * (nc + 1) * sizeof(bool));
		if (!agg) {
			qsort(all, nrows, sizeof *all, q->desc ? cmp_row_desc : cmp_row);
			for (size_t r = 0; r < nrows; r++) {
				bool sel = false;
				size_t o = set->nrows;
				for (size_t c = 0; c < nc; c++) {
					int f = e->ecols[c].field;
					bool has = f < NF && all[r].has[f];
					set->nulls[o * nc + c] = !has;
					set->vals[o * nc + c] = has ? all[r].v[f] : 0;
					sel |= has;
				}
				if (!sel)
					continue;
				set->times[o] = all[r].t;
				set->nrows++;
			}
		} else if (!q->interval) {
			bool any = false;
			for (size_t r = 0; r < nrows; r++)
				for (size_t c = 0; c < nc; c++)
					any |=
					    e->ecols[c].field < NF && all[r].has[e->ecols[c].field];
			if (any) {
				set->times[0] = (q->has_lo || q->eq) ? t0 : 0;
				for (size_t c = 0; c < nc; c++)
					set->nulls[c] =
					    !agg_value(&e->ecols[c], all, nrows, &set->vals[c]);
				set->nrows = 1;
			}
		} else {
			int64_t off = q->offset % q->interval;
			if (off < 0)
				off += q->interval;
			qsort(all, nrows, sizeof *all, cmp_row);
			size_t r = 0;
			for (size_t b = 0; b < nb; b++) {
				size_t rs = r;
				while (r < nrows && all[r].t < bstart[b] + q->interval)
					r++;
				bool has = false;
				for (size_t k = rs; k < r; k++)
					for (size_t c = 0; c < nc; c++)
						has |= e->ecols[c].field < NF &&
						       all[k].has[e->ecols[c].field];
				if (!has && !q->fill)
					continue;
				size_t o = set->nrows++;
				set->times[o] = bstart[b];
				for (size_t c = 0; c < nc; c++)
					set->nulls[o * nc + c] =
					    !has || !agg_value(&e->ecols[c], all + rs, r - rs,
					                       &set->vals[o * nc + c]);
			}
			if (q->desc)
				for (size_t i = 0, j = set->nrows; i + 1 < j; i++, j--) {
					int64_t t = set->times[i];
					set->times[i] = set->times[j - 1];
					set->times[j - 1] = t;
					for (size_t c = 0; c < nc; c++) {
						double v = set->vals[i * nc + c];
						set->vals[i * nc + c] = set->vals[(j - 1) * nc + c];
						set->vals[(j - 1) * nc + c] = v;
						bool u = set->nulls[i * nc + c];
						set->nulls[i * nc + c] =
						    set->nulls[(j - 1) * nc + c];
						set->nulls[(j - 1) * nc + c] = u;
					}
				}
			/* Fills, column by column in output order. */
			for (size_t c = 0; c < nc && q->fill >= 2; c++) {
				bool have = false;
				double prev = 0;
				size_t prow = 0;
				for (size_t o = 0; o < set->nrows; o++) {
					bool *u = &set->nulls[o * nc + c];
					double *v = &set->vals[o * nc + c];
					if (q->fill == 4) {
						if (*u)
							*v = q->fill_value;
						*u = false;
					} else if (q->fill == 2) {
						if (*u && have) {
							*v = prev;
							*u = false;
						} else if (!*u) {
							have = true;
							prev = *v;
						}
					} else if (!*u) {
						for (size_t k = prow + 1; have && k < o; k++) {
							double ratio = ((double)set->times[k] -
							                (double)set->times[prow]) /
							               ((double)set->times[o] -
							                (double)set->times[prow]);
							set->vals[k * nc + c] =
							    prev + (*v - prev) * ratio;
							set->nulls[k * nc + c] = false;
						}
						have = true;
						prev = *v;
						prow = o;
					}
				}
			}
		}
		free(bstart);
		if (q->limit && set->nrows > q->limit)
			set->nrows = q->limit;
	}
	free(all);
}

static void free_expected(expected_t *e)
{
	for (size_t s = 0; s < e->nsets; s++) {
		free(e->sets[s].times);
		free(e->sets[s].vals);
		free(e->sets[s].nulls);
	}
	free(e->sets);
}

static bool close_enough(double a, double b)
{
	if (isnan(a) || isnan(b))
		return isnan(a) && isnan(b);
	double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
	return fabs(a - b) <= 1e-9 * (scale > 1 ? scale : 1);
}

static void compare(const query_t *q, const expected_t *e, const collect_t *got)
{
	size_t s_got = 0;
	for (size_t s = 0; s < e->nsets; s++) {
		const exp_set_t *es = &e->sets[s];
		if (es->nrows == 0)
			continue;
		cr_assert_lt(s_got, got->nsets, "%s: missing set %zu", q->text, s);
		const col_set_t *gs = &got->sets[s_got++];
		cr_assert_str_eq(gs->name, "m", "%s", q->text);
		cr_assert_eq(gs->ntags, e->ntagk, "%s", q->text);
		for (size_t k = 0; k < e->ntagk; k++) {
			cr_assert_str_eq(gs->tag_keys[k], e->tagk[k], "%s", q->text);
			cr_assert_str_eq(gs->tag_values[k], es->tagv[k],
			                 "%s: set %zu: '%s', want '%s'", q->text, s,
			                 gs->tag_values[k], es->tagv[k]);
		}
		cr_assert_eq(gs->ncols, e->ncols + 1, "%s", q->text);
		for (size_t c = 0; c < e->ncols; c++)
			cr_assert_str_eq(gs->cols[c + 1], e->cols[c], "%s", q->text);
		cr_assert_eq(gs->nrows, es->nrows, "%s: set %zu (%s,%s): %zu rows, want %zu",
		             q->text, s, es->tagv[0], es->tagv[1], gs->nrows, es->nrows);
		size_t nc = e->ncols;
		for (size_t r = 0; r < es->nrows; r++) {
			cr_assert_eq(gs->times[r], es->times[r],
			             "%s: set %zu row %zu: time %lld, want %lld", q->text, s, r,
			             (long long)gs->times[r], (long long)es->times[r]);
			for (size_t c = 0; c < nc; c++) {
				bool gn = gs->null[r * nc + c], en = es->nulls[r * nc + c];
				cr_assert_eq(gn, en,
				             "%s: set %zu row %zu (t %lld) col %s: null %d, want "
				             "%d (value %g)",
				             q->text, s, r, (long long)es->times[r], e->cols[c], gn,
				             en, en ? gs->f[r * nc + c] : es->vals[r * nc + c]);
				if (!en)
					cr_assert(
					    close_enough(gs->f[r * nc + c], es->vals[r * nc + c]),
					    "%s: set %zu row %zu (t %lld) col %s: %.17g, want "
					    "%.17g",
					    q->text, s, r, (long long)es->times[r], e->cols[c],
					    gs->f[r * nc + c], es->vals[r * nc + c]);
			}
		}
	}
	cr_assert_eq(s_got, got->nsets, "%s: %zu sets, want %zu", q->text, got->nsets, s_got);
}

static void run_property(uint64_t seed, int nqueries, bool headers)
{
	char dir[256];
	vg_store_t *store = open_store(dir, sizeof dir);
	vg_test_rng_t rng = {seed};
	populate(store, &rng);
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_gt(st.chunks, 0, "some data is sealed");
	cr_assert_gt(st.head_points, 0, "some data is not");
	uint64_t scanned = 0, shared = 0;
	/* Half the queries may hand half of their groups to a helper thread:
	 * the answers must not change. */
	vg_query_helpers_t *helpers;
	cr_assert_eq(vg_query_helpers_new(1, &helpers), 0);
	for (int i = 0; i < nqueries; i++) {
		query_t q;
		gen_query(&q, &rng, headers);
		expected_t e;
		evaluate(&q, &e);
		vg_exec_options_t opts;
		vg_exec_options_init(&opts);
		opts.now_ns = NOW;
		static const size_t blocks[] = {1, 3, 1024};
		opts.max_rows = blocks[vg_test_below(&rng, 3)];
		/* Both ways through GROUP BY time: cursors all open, or a table. */
		opts.max_open = vg_test_below(&rng, 2) ? 1 : 64;
		if (vg_test_below(&rng, 2)) {
			opts.helpers = helpers;
			opts.parallel_min_series = 2;
			/* Half of those share exactly half, whatever the timing. */
			opts.helpers_even = vg_test_below(&rng, 2);
		}
		collect_t got = {0};
		got.abort_after_blocks = -1;
		vg_exec_stats_t stats;
		vg_query_error_t err;
		int rc = run_query(store, q.text, &opts, &got, &stats, &err);
		cr_assert_eq(rc, 0, "%s: %s", q.text, err.message);
		compare(&q, &e, &got);
		size_t rows = 0;
		for (size_t s = 0; s < got.nsets; s++)
			rows += got.sets[s].nrows;
		cr_assert_eq(stats.rows_emitted, rows, "%s", q.text);
		scanned += stats.points_scanned;
		if (opts.helpers_even)
			shared += stats.groups_shared;
		cr_assert(opts.helpers || stats.groups_shared + stats.sources_shared == 0, "%s",
		          q.text);
		collect_release(&got);
		free_expected(&e);
		free_query(&q);
	}
	cr_assert_gt(scanned, 0);
	/* Even splits do not depend on timing: some multi-group queries must
	 * have shared.  (Single-group GROUP BY time over several series, where
	 * the opening is shared, is rarer here; exec_select checks it.) */
	cr_assert_gt(shared, 0, "some queries shared groups with the helper");
	vg_query_helpers_free(helpers);
	free_data();
	vg_store_close(store);
	vg_test_rmdir(dir);
}

Test(exec_property, seed1, .timeout = 120)
{
	run_property(0x1234567ULL, 500, false);
}
Test(exec_property, seed2, .timeout = 120)
{
	run_property(0xfeedbeefULL, 500, false);
}
Test(exec_property, seed3, .timeout = 120)
{
	run_property(0x5eed5eedULL, 500, false);
}
Test(exec_property, headers, .timeout = 120)
{
	run_property(0xc0ffeeULL, 500, true);
}
