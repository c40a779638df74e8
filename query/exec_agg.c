/*
 * exec_agg.c — aggregate SELECTs: accumulators and the bucket loop.
 *
 * One group at a time.  Without GROUP BY time there is one bucket, the
 * scan range: each source is opened, drained and closed in turn, so only
 * one cursor is open at once, and every whole chunk inside the range is
 * added from its header (count, sum, min, max, first, last are in it).
 *
 * With GROUP BY time over up to max_open sources, all of them are open at
 * once and the loop visits only buckets that hold data: the next bucket is the earliest
 * (latest, for ORDER BY time DESC, where cursors run backwards) bucket of
 * any source's next point, so empty stretches cost nothing.  Each source
 * then drains what falls in that bucket — whole chunks from headers where
 * they fit in the bucket — into one accumulator per field, the bucket's row
 * goes to the fill stage, and the accumulators are reset.  Memory: the
 * cursors (a decoded chunk each) and, for median/percentile, the values of
 * one bucket.  A group with more sources would hold too many cursors, so
 * its sources are drained one at a time into a table of the buckets that
 * get points, sorted and output at the end (run_table): memory per bucket
 * instead of per series, at the price of reading the group whole before
 * LIMIT can stop it.
 *
 * Sources are series (one field of one tag set) when no row of the group
 * needs a per-row field test, else rows of a tag set (exec_source.c).
 *
 * Two threads when a helper is idle (opts.helpers): groups are shared with
 * it, this thread taking them from the front and the helper from the back,
 * its rows recorded and replayed in group order (vg_exec_aggregate); and a
 * single group's series sources, opened all at once for GROUP BY time, are
 * opened from both ends the same way (open_sources).  Decoding chunks is
 * most of an aggregate's time, so this nearly halves it on two cores.
 *
 * Accumulators are order-independent: first/last compare times, and equal
 * times across tag sets go to the lower rank (tag-set order), so forward,
 * backward and header paths agree; sums may differ in the last bits.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h> /* SSE2: part of every x86-64 */
#define HAVE_SSE2 1
#endif

typedef struct acc {
	uint64_t points; /* NaN included */
	uint64_t count;  /* non-NaN */
	double sum, min, max;
	int64_t first_time, last_time;
	uint32_t first_rank, last_rank;
	double first, last;
	double wmean, m2; /* Welford, for stddev */
	double *values;   /* non-NaN values, for median/percentile */
	size_t nvalues, cap;
	bool sorted;
} acc_t;

typedef struct agg {
	vg_exec_t *x;
	vg_plan_t *plan;
	const vg_select_t *sel;
	int64_t interval, offset;
	bool reverse; /* cursors run backwards (the bucket loop with DESC) */
	bool desc;    /* rows go out newest first */
	acc_t *accs;  /* per plan field */
	double *row;  /* per column: the bucket's row */
	bool *nulls;
	double *gap_row; /* per column: an empty bucket's row (all null) */
	bool *gap_nulls;
	double *rvalues; /* per plan field, for row sources */
	bool *rpresent;
	vg_emit_t emit;
	vg_fill_t fill;
	vg_series_src_t *ssrc;
	size_t nssrc;
	vg_row_src_t *rsrc;
	size_t nrsrc;
	const vg_tagset_t *rts; /* tag sets of rsrc */
	bool emit_ok, fill_ok;  /* emit and fill are initialised */
} agg_t;

/* ---- accumulators --------------------------------------------------------- */

static void acc_reset(vg_exec_t *x, acc_t *a)
{
	vg_exec_unhold(x, a->nvalues);
	double *values = a->values;
	size_t cap = a->cap;
	memset(a, 0, sizeof *a);
	a->values = values;
	a->cap = cap;
	a->min = INFINITY;
	a->max = -INFINITY;
}

static void take_first(acc_t *a, int64_t t, double v, uint32_t rank)
{
	if (a->count == 0 || t < a->first_time || (t == a->first_time && rank < a->first_rank)) {
		a->first_time = t;
		a->first = v;
		a->first_rank = rank;
	}
}

static void take_last(acc_t *a, int64_t t, double v, uint32_t rank)
{
	if (a->count == 0 || t > a->last_time || (t == a->last_time && rank < a->last_rank)) {
		a->last_time = t;
		a->last = v;
		a->last_rank = rank;
	}
}

static int keep_values(vg_exec_t *x, acc_t *a, size_t extra)
{
	int code = vg_exec_hold(x, extra);
	if (code)
		return code;
	if (a->nvalues + extra > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		while (cap < a->nvalues + extra)
			cap *= 2;
		double *v = vg_reallocarray(a->values, cap, sizeof *v);
		if (!v) {
			vg_exec_unhold(x, extra);
			return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
		}
		a->values = v;
		a->cap = cap;
	}
	return 0;
}

/*
 * count, sum, min and max of the non-NaN values of v[0..n), min and max
 * merged into *mn and *mx.  Four independent lanes and no branches: a
 * single running sum would wait on each addition's latency (~4 cycles per
 * point), which bounded aggregation over decoded chunks.  NaN drops out by
 * itself: it adds 0, counts 0 and loses every comparison.  The sum is
 * ((l0 + l1) + (l2 + l3)), so it may differ from a sum in time order in
 * the last bits, as the header path's may (see the top of the file).
 */
static void run_summary(const double *v, size_t n, uint64_t *count, double *sum, double *mn,
                        double *mx)
{
	if (n < 16) {
		/* A short run (a bucket of a few points): one lane. */
		uint64_t k = 0;
		double t = 0, l = *mn, h = *mx;
		for (size_t i = 0; i < n; i++) {
			double x = v[i];
			bool ok = x == x;
			t += ok ? x : 0.0;
			k += ok;
			l = x < l ? x : l;
			h = x > h ? x : h;
		}
		*count = k;
		*sum = t;
		*mn = l;
		*mx = h;
		return;
	}
	double s[4] = {0, 0, 0, 0}, lo[4], hi[4];
	uint64_t c[4] = {0, 0, 0, 0};
	for (size_t k = 0; k < 4; k++) {
		lo[k] = *mn;
		hi[k] = *mx;
	}
	size_t i = 0;
#ifdef HAVE_SSE2
	/* The same lanes two at a time: lanes 0-1 in a, 2-3 in b.  minpd and
	 * maxpd return their second operand when either is NaN, which is
	 * exactly x < lo ? x : lo. */
	__m128d sa = _mm_setzero_pd(), sb = _mm_setzero_pd();
	__m128d la = _mm_set1_pd(*mn), lb = la, ha = _mm_set1_pd(*mx), hb = ha;
	__m128i ca = _mm_setzero_si128(), cb = _mm_setzero_si128();
	for (; i + 4 <= n; i += 4) {
		__m128d xa = _mm_loadu_pd(v + i), xb = _mm_loadu_pd(v + i + 2);
		__m128d oka = _mm_cmpeq_pd(xa, xa), okb = _mm_cmpeq_pd(xb, xb);
		sa = _mm_add_pd(sa, _mm_and_pd(xa, oka));
		sb = _mm_add_pd(sb, _mm_and_pd(xb, okb));
		ca = _mm_sub_epi64(ca, _mm_castpd_si128(oka)); /* a true lane is -1 */
		cb = _mm_sub_epi64(cb, _mm_castpd_si128(okb));
		la = _mm_min_pd(xa, la);
		lb = _mm_min_pd(xb, lb);
		ha = _mm_max_pd(xa, ha);
		hb = _mm_max_pd(xb, hb);
	}
	_mm_storeu_pd(s, sa);
	_mm_storeu_pd(s + 2, sb);
	_mm_storeu_pd(lo, la);
	_mm_storeu_pd(lo + 2, lb);
	_mm_storeu_pd(hi, ha);
	_mm_storeu_pd(hi + 2, hb);
	_mm_storeu_si128((__m128i *)c, ca);
	_mm_storeu_si128((__m128i *)(c + 2), cb);
#endif
	for (; i + 4 <= n; i += 4)
		for (size_t k = 0; k < 4; k++) {
			double x = v[i + k];
			bool ok = x == x;
			s[k] += ok ? x : 0.0;
			c[k] += ok;
			lo[k] = x < lo[k] ? x : lo[k];
			hi[k] = x > hi[k] ? x : hi[k];
		}
	for (size_t k = 0; i < n; i++, k++) {
		double x = v[i];
		bool ok = x == x;
		s[k] += ok ? x : 0.0;
		c[k] += ok;
		lo[k] = x < lo[k] ? x : lo[k];
		hi[k] = x > hi[k] ? x : hi[k];
	}
	*count = c[0] + c[1] + c[2] + c[3];
	*sum = (s[0] + s[1]) + (s[2] + s[3]);
	for (size_t k = 0; k < 4; k++) {
		*mn = lo[k] < *mn ? lo[k] : *mn;
		*mx = hi[k] > *mx ? hi[k] : *mx;
	}
}

/* Adds n points in time order (descending when reverse). */
static int acc_add_run(agg_t *s, acc_t *a, const vg_plan_field_t *f, const int64_t *times,
                       const double *values, size_t n, uint32_t rank)
{
	if (n == 0)
		return 0;
	a->points += n;
	/* Earliest and latest non-NaN values sit at the ends of the run. */
	size_t lo = 0, hi = n;
	while (lo < n && isnan(values[lo]))
		lo++;
	if (lo == n)
		return 0;
	while (isnan(values[hi - 1]))
		hi--;
	size_t early = s->reverse ? hi - 1 : lo, late = s->reverse ? lo : hi - 1;
	take_first(a, times[early], values[early], rank);
	take_last(a, times[late], values[late], rank);
	uint64_t count;
	double sum, mn = a->min, mx = a->max;
	run_summary(values + lo, hi - lo, &count, &sum, &mn, &mx);
	if (f->needs_m2) {
		uint64_t k = a->count;
		for (size_t i = lo; i < hi; i++) {
			double v = values[i];
			if (isnan(v))
				continue;
			k++;
			double d = v - a->wmean;
			a->wmean += d / (double)k;
			a->m2 += d * (v - a->wmean);
		}
	}
	if (f->needs_values) {
		int code = keep_values(s->x, a, count);
		if (code)
			return code;
		for (size_t i = lo; i < hi; i++)
			if (!isnan(values[i]))
				a->values[a->nvalues++] = values[i];
		a->sorted = false;
	}
	a->count += count;
	a->sum += sum;
	a->min = mn;
	a->max = mx;
	return 0;
}

static void acc_add_header(acc_t *a, const vg_chunk_header_t *h, uint32_t rank)
{
	a->points += h->count;
	if (h->value_count == 0)
		return;
	take_first(a, h->min_time, h->first_value, rank);
	take_last(a, h->max_time, h->last_value, rank);
	a->count += h->value_count;
	a->sum += h->sum;
	if (h->min_value < a->min)
		a->min = h->min_value;
	if (h->max_value > a->max)
		a->max = h->max_value;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

bool vg_agg_final(vg_agg_fn_t fn, double percentile, int64_t rate_unit_ns, vg_agg_summary_t *a,
		  double *out)
{
	if (fn == VG_AGG_COUNT) {
		*out = (double)a->count;
		return a->points > 0;
	}
	if (a->count == 0)
		return false;
	switch (fn) {
	case VG_AGG_SUM:
		*out = a->sum;
		return true;
	case VG_AGG_MIN:
		*out = a->min;
		return true;
	case VG_AGG_MAX:
		*out = a->max;
		return true;
	case VG_AGG_MEAN:
		*out = a->sum / (double)a->count;
		return true;
	case VG_AGG_FIRST:
		*out = a->first;
		return true;
	case VG_AGG_LAST:
		*out = a->last;
		return true;
	case VG_AGG_SPREAD:
		*out = a->max - a->min;
		return true;
	case VG_AGG_STDDEV:
		if (a->count < 2)
			return false;
		*out = sqrt(a->m2 / (double)(a->count - 1));
		return true;
	case VG_AGG_MEDIAN:
	case VG_AGG_PERCENTILE: {
		size_t n = a->nvalues;
		if (!a->sorted) {
			qsort(a->values, n, sizeof *a->values, cmp_double);
			a->sorted = true;
		}
		if (n == 0)
			return false;
		if (fn == VG_AGG_MEDIAN) {
			*out = n % 2 ? a->values[n / 2]
			             : (a->values[n / 2 - 1] + a->values[n / 2]) / 2;
			return true;
		}
		double idx = floor((double)n * percentile / 100.0 + 0.5) - 1;
		if (idx < 0 || idx >= (double)n)
			return false;
		*out = a->values[(size_t)idx];
		return true;
	}
	case VG_AGG_RATE: {
		if (a->count < 2 || a->last_time == a->first_time)
			return false;
		double dt = (double)a->last_time - (double)a->first_time;
		int64_t idt;
		if (!__builtin_sub_overflow(a->last_time, a->first_time, &idt))
			dt = (double)idt;
		*out = (a->last - a->first) / dt * (double)rate_unit_ns;
		return true;
	}
	default:
		return false;
	}
}

/* The value of one column from its field's accumulator: false for null. */
static bool column_value(acc_t *a, const vg_plan_column_t *c, double *out)
{
	vg_agg_summary_t s = {a->points, a->count,    a->sum,        a->min,      a->max,
			      a->first,  a->last,     a->first_time, a->last_time, a->m2,
			      a->values, a->nvalues,  a->sorted};
	bool ok = vg_agg_final(c->agg, c->percentile, c->rate_unit_ns, &s, out);
	a->sorted = s.sorted;
	return ok;
}

/* Builds the row from a bucket's accumulators; false when it is empty. */
static bool finish_row(agg_t *s, acc_t *accs)
{
	vg_plan_t *plan = s->plan;
	bool any = false;
	for (size_t f = 0; f < plan->nfields; f++)
		any |= accs[f].points > 0;
	if (!any)
		return false;
	for (size_t c = 0; c < plan->ncolumns; c++) {
		const vg_plan_column_t *col = &plan->columns[c];
		s->nulls[c] = !column_value(&accs[col->field], col, &s->row[c]);
	}
	return true;
}

static void reset_accs(agg_t *s, acc_t *accs)
{
	for (size_t f = 0; f < s->plan->nfields; f++)
		acc_reset(s->x, &accs[f]);
}

/* ---- draining sources into a bucket ---------------------------------------- */

static int64_t limit_single(const void *ctx, int64_t t)
{
	(void)t;
	const agg_t *s = ctx;
	return s->reverse ? s->plan->t0 : s->plan->t1;
}

static int64_t limit_bucket(const void *ctx, int64_t t)
{
	const agg_t *s = ctx;
	int64_t b = vg_bucket_start(t, s->interval, s->offset);
	if (s->reverse)
		return b;
	return b > INT64_MAX - s->interval ? INT64_MAX : b + s->interval;
}

static int64_t bucket_end(const agg_t *s, int64_t b)
{
	return b > INT64_MAX - s->interval ? INT64_MAX : b + s->interval;
}

static bool in_bucket(const agg_t *s, int64_t t, int64_t lo, int64_t hi)
{
	return s->reverse ? t >= lo : t < hi;
}

/* The end of the points [pos, n) of a block that fall in the bucket [lo,
 * hi), times ascending (descending when reverse): a galloping search, as
 * a bucket is often a few points of a long decoded block. */
static size_t run_end(const int64_t *times, size_t pos, size_t n, bool reverse, int64_t lo,
                      int64_t hi)
{
	size_t step = 1;
	while (pos + step < n && (reverse ? times[pos + step] >= lo : times[pos + step] < hi)) {
		pos += step;
		step *= 2;
	}
	n = pos + step < n ? pos + step : n;
	while (pos < n) {
		size_t mid = pos + (n - pos) / 2;
		if (reverse ? times[mid] >= lo : times[mid] < hi)
			pos = mid + 1;
		else
			n = mid;
	}
	return pos;
}

/* Drains what series source src holds in [lo, hi) into accs. */
static int drain_series(agg_t *s, vg_series_src_t *src, acc_t *accs, int64_t lo, int64_t hi)
{
	acc_t *a = &accs[src->field];
	const vg_plan_field_t *f = &s->plan->fields[src->field];
	while (!src->done && in_bucket(s, src->next, lo, hi)) {
		int code;
		if (src->have_header) {
			acc_add_header(a, &src->header, src->rank);
			int64_t p = s->reverse ? src->header.min_time : src->header.max_time;
			code = vg_series_src_fetch(s->x, src, s->reverse ? p - 1 : p + 1);
			if (code)
				return code;
			continue;
		}
		size_t j = run_end(src->times, src->pos, src->n, s->reverse, lo, hi);
		code = acc_add_run(s, a, f, src->times + src->pos, src->values + src->pos,
		                   j - src->pos, src->rank);
		if (code)
			return code;
		src->pos = j;
		if (j < src->n) {
			src->next = src->times[j];
			break;
		}
		int64_t p = src->times[src->n - 1];
		if (s->reverse)
			p = p == INT64_MIN ? p : p - 1;
		else
			p = p + 1; /* times < t1 <= INT64_MAX */
		code = vg_series_src_fetch(s->x, src, p);
		if (code)
			return code;
	}
	return 0;
}

static int drain_rows(agg_t *s, vg_row_src_t *src, const vg_tagset_t *ts, uint32_t rank,
                      acc_t *accs, int64_t lo, int64_t hi)
{
	vg_plan_t *plan = s->plan;
	for (;;) {
		int code = vg_row_src_peek(s->x, src);
		if (code)
			return code;
		if (src->done || !in_bucket(s, src->next, lo, hi))
			return 0;
		int64_t t = src->next;
		vg_row_src_take(src, s->rvalues, s->rpresent);
		if (!vg_plan_row_matches(plan, ts, s->rvalues, s->rpresent))
			continue;
		for (size_t f = 0; f < plan->nfields; f++) {
			if (!plan->fields[f].selected || !s->rpresent[f])
				continue;
			code =
			    acc_add_run(s, &accs[f], &plan->fields[f], &t, &s->rvalues[f], 1, rank);
			if (code)
				return code;
		}
	}
}

/* ---- sources --------------------------------------------------------------- */

static void close_sources(agg_t *s)
{
	for (size_t i = 0; i < s->nssrc; i++)
		vg_series_src_close(&s->ssrc[i]);
	for (size_t i = 0; i < s->nrsrc; i++)
		vg_row_src_close(&s->rsrc[i]);
	vg_free(s->ssrc);
	vg_free(s->rsrc);
	s->ssrc = NULL;
	s->rsrc = NULL;
	s->nssrc = s->nrsrc = 0;
}

/* Lists the group's sources (not yet open). */
static int make_sources(agg_t *s, const vg_group_t *g, bool rows)
{
	vg_plan_t *plan = s->plan;
	const vg_tagset_t *ts = plan->tagsets + g->first;
	if (rows) {
		s->rsrc = vg_calloc(g->count, sizeof *s->rsrc);
		if (!s->rsrc)
			return vg_query_error_set(s->x->err, VG_ENOMEM, "out of memory");
		for (size_t i = 0; i < g->count; i++)
			s->rsrc[i].done = true;
		s->nrsrc = g->count;
		s->rts = ts;
		return 0;
	}
	size_t n = 0;
	for (size_t i = 0; i < g->count; i++)
		for (size_t f = 0; f < plan->nfields; f++)
			n += plan->fields[f].selected && ts[i].series[f] >= 0;
	s->ssrc = vg_calloc(n ? n : 1, sizeof *s->ssrc);
	if (!s->ssrc)
		return vg_query_error_set(s->x->err, VG_ENOMEM, "out of memory");
	for (size_t i = 0; i < g->count; i++)
		for (size_t f = 0; f < plan->nfields; f++) {
			if (!plan->fields[f].selected || ts[i].series[f] < 0)
				continue;
			vg_series_src_t *src = &s->ssrc[s->nssrc++];
			src->id = (vg_series_id_t)ts[i].series[f];
			src->field = f;
			src->rank = (uint32_t)i;
			src->headers = !plan->fields[f].needs_values && !plan->fields[f].needs_m2;
			src->limit = s->interval ? limit_bucket : limit_single;
			src->lctx = s;
			src->done = true;
		}
	return 0;
}

/* Opens source i (series sources first, then row sources) in x's
 * transaction. */
static int open_source(agg_t *s, vg_exec_t *x, size_t i)
{
	vg_plan_t *plan = s->plan;
	if (i < s->nssrc) {
		s->ssrc[i].reverse = s->reverse;
		return vg_series_src_open(x, &s->ssrc[i], plan->t0, plan->t1);
	}
	i -= s->nssrc;
	return vg_row_src_open(x, &s->rsrc[i], &s->rts[i], plan->nfields, plan->t0, plan->t1,
	                       s->reverse, false);
}

static void close_source(agg_t *s, size_t i)
{
	if (i < s->nssrc)
		vg_series_src_close(&s->ssrc[i]);
	else
		vg_row_src_close(&s->rsrc[i - s->nssrc]);
}

/* The time of source i's next point: 0 and *has = false at its end. */
static int source_next(agg_t *s, size_t i, bool *has, int64_t *next)
{
	if (i < s->nssrc) {
		*has = !s->ssrc[i].done;
		*next = s->ssrc[i].next;
		return 0;
	}
	vg_row_src_t *src = &s->rsrc[i - s->nssrc];
	int code = vg_row_src_peek(s->x, src);
	*has = !src->done;
	*next = src->next;
	return code;
}

static int drain_source(agg_t *s, size_t i, acc_t *accs, int64_t lo, int64_t hi)
{
	if (i < s->nssrc)
		return drain_series(s, &s->ssrc[i], accs, lo, hi);
	i -= s->nssrc;
	return drain_rows(s, &s->rsrc[i], &s->rts[i], (uint32_t)i, accs, lo, hi);
}

/* ---- output: buckets in order, with fill rows between --------------------------- */

typedef struct out {
	bool filling;   /* a FILL other than none, over a non-empty range */
	bool started;   /* a bucket of the group had data */
	bool cur_valid; /* cur: the next bucket of the fill range to output */
	int64_t cur;
} out_t;

static void out_init(agg_t *s, out_t *o)
{
	vg_plan_t *plan = s->plan;
	o->filling = s->sel->fill != VG_FILL_NONE && plan->t0 < plan->t1;
	o->started = false;
	o->cur_valid = o->filling;
	o->cur = s->desc ? plan->fill_hi : plan->fill_lo;
}

/* Moves cur one bucket on in output order, or marks the fill range done. */
static void out_step(const agg_t *s, out_t *o)
{
	const vg_plan_t *plan = s->plan;
	if (s->desc) {
		if (o->cur < plan->fill_lo ||
		    (uint64_t)o->cur - (uint64_t)plan->fill_lo < (uint64_t)s->interval)
			o->cur_valid = false;
		else
			o->cur -= s->interval;
	} else {
		if (o->cur > plan->fill_hi ||
		    (uint64_t)plan->fill_hi - (uint64_t)o->cur < (uint64_t)s->interval)
			o->cur_valid = false;
		else
			o->cur += s->interval;
	}
}

/* Empty fill rows from cur up to (not including) `until` in output order;
 * to the end of the fill range when !bounded. */
static int out_gap(agg_t *s, out_t *o, bool bounded, int64_t until)
{
	unsigned n = 0;
	while (o->cur_valid && (!bounded || (s->desc ? o->cur > until : o->cur < until))) {
		int code = vg_fill_push(&s->fill, o->cur, s->gap_row, s->gap_nulls);
		if (code)
			return code;
		if ((++n & 1023) == 0 && (code = vg_exec_check(s->x)))
			return code;
		out_step(s, o);
	}
	return 0;
}

/* Bucket nb in output order; its row is in s->row/s->nulls when `has`. */
static int out_bucket(agg_t *s, out_t *o, int64_t nb, bool has)
{
	if (!has && !o->started)
		return 0; /* everything filtered out so far: no fill yet */
	int code;
	if (o->filling && (code = out_gap(s, o, true, nb)))
		return code;
	o->started = true;
	if (has)
		code = vg_fill_push(&s->fill, nb, s->row, s->nulls);
	else if (o->filling)
		code = vg_fill_push(&s->fill, nb, s->gap_row, s->gap_nulls);
	else
		code = 0;
	if (code == 0 && o->filling && o->cur_valid) {
		o->cur = nb;
		out_step(s, o);
	}
	return code;
}

static int out_end(agg_t *s, out_t *o)
{
	return o->started && o->filling ? out_gap(s, o, false, 0) : 0;
}

/* ---- the three ways through a group ----------------------------------------------- */

/* No GROUP BY time: one bucket over the range, sources one at a time. */
static int run_single(agg_t *s)
{
	vg_plan_t *plan = s->plan;
	reset_accs(s, s->accs);
	int code = 0;
	for (size_t i = 0; i < s->nssrc + s->nrsrc && code == 0; i++) {
		code = open_source(s, s->x, i);
		code = code ? code : drain_source(s, i, s->accs, plan->t0, plan->t1);
		close_source(s, i);
	}
	if (code == 0 && finish_row(s, s->accs))
		code = vg_fill_push(&s->fill, plan->has_lower ? plan->t0 : 0, s->row, s->nulls);
	return code;
}

/*
 * Opening a series source decodes its first chunk, most of the work of a
 * short range over a few series (one host's fields over 12 hours).  With
 * the statement's fork free and a helper idle, the helper opens series
 * sources from the back (in the fork) while this thread opens them from
 * the front (helpers.c); the cursors the helper opened are read by this
 * thread afterwards (a read transaction may move between threads when its
 * use is ordered, as the wait orders it).
 */

/* A helper thread's side of a shared part of a statement: items of a split
 * taken from the back, read in the statement's fork, with their own stats,
 * error and stop flag. */
typedef struct helper_side {
	vg_helper_task_t task; /* first: the helper is handed &task */
	vg_split_t split;
	vg_exec_t x;
	vg_exec_stats_t stats;
	vg_query_error_t err;
	atomic_bool stop;
	int code;
} helper_side_t;

/* Sets h up for n items of x's statement (its sink left NULL). */
static void helper_side_init(helper_side_t *h, vg_exec_t *x, void (*run)(vg_helper_task_t *),
                             size_t n)
{
	h->task.run = run;
	vg_split_init(&h->split, n, x->opts.helpers_even);
	h->x = *x;
	h->x.txn = x->fork;
	h->x.fork = NULL;
	h->x.sink = NULL;
	h->x.stats = &h->stats;
	h->x.err = &h->err;
	h->x.ticks = 0;
	h->x.values_held = 0;
	h->x.stop = &h->stop;
	atomic_init(&h->stop, false);
}

/*
 * Once this thread has taken all it could (code: how that went): stops
 * the helper after a failure, waits for it (or takes back a task it has
 * not begun), and returns the statement's code with the helper's error
 * and scanned points folded in.  What the helper left is then this
 * thread's: the split is no longer even.
 */
static int helper_side_join(helper_side_t *h, vg_exec_t *x, int code)
{
	if (code)
		atomic_store(&h->stop, true);
	if (x->opts.helpers_even)
		vg_helpers_wait(x->opts.helpers, &h->task);
	else
		vg_helpers_finish(x->opts.helpers, &h->task);
	h->split.even = false;
	if (code == 0 && h->code) {
		code = h->code;
		if (x->err)
			*x->err = h->err;
	}
	if (x->stats)
		x->stats->points_scanned += h->stats.points_scanned;
	return code;
}

typedef struct open_share {
	helper_side_t h; /* first */
	agg_t *s;
} open_share_t;

static void run_open_share(vg_helper_task_t *task)
{
	open_share_t *o = (open_share_t *)task;
	size_t i;
	while (o->h.code == 0 && vg_split_back(&o->h.split, &i))
		o->h.code = open_source(o->s, &o->h.x, i);
}

/* Starts a helper on the group's series into *o if the group is worth
 * sharing and a helper is idle. */
static bool open_share_start(agg_t *s, open_share_t *o)
{
	vg_exec_t *x = s->x;
	if (!x->fork || s->nssrc < 2 || s->nssrc < x->opts.parallel_min_series / 4)
		return false;
	*o = (open_share_t){0};
	helper_side_init(&o->h, x, run_open_share, s->nssrc);
	o->s = s;
	if (!vg_helpers_try_start(x->opts.helpers, &o->h.task)) {
		vg_split_release(&o->h.split);
		return false;
	}
	return true;
}

/* Opens all sources of the group, sharing the series with a helper if one
 * is idle.  The helper is joined before this returns, so the shared state
 * lives here. */
static int open_sources(agg_t *s)
{
	vg_exec_t *x = s->x;
	open_share_t o;
	bool shared = open_share_start(s, &o);
	int code = 0;
	size_t i;
	if (shared)
		while (code == 0 && vg_split_front(&o.h.split, &i))
			code = open_source(s, x, i);
	else
		for (i = 0; i < s->nssrc && code == 0; i++)
			code = open_source(s, x, i);
	for (i = s->nssrc; i < s->nssrc + s->nrsrc && code == 0; i++)
		code = open_source(s, x, i);
	if (!shared)
		return code;
	code = helper_side_join(&o.h, x, code);
	while (code == 0 && vg_split_front(&o.h.split, &i))
		code = open_source(s, x, i);
	if (x->stats)
		x->stats->sources_shared += s->nssrc - o.h.split.back;
	vg_split_release(&o.h.split);
	return code;
}

/* GROUP BY time over a few sources: all open at once, bucket by bucket. */
static int run_buckets(agg_t *s)
{
	size_t nsrc = s->nssrc + s->nrsrc;
	int code = open_sources(s);
	out_t o;
	out_init(s, &o);
	while (code == 0) {
		code = vg_exec_check(s->x);
		bool any = false;
		int64_t nb = 0;
		for (size_t i = 0; i < nsrc && code == 0; i++) {
			bool has;
			int64_t next;
			code = source_next(s, i, &has, &next);
			if (!has)
				continue;
			int64_t b = vg_bucket_start(next, s->interval, s->offset);
			if (!any || (s->reverse ? b > nb : b < nb))
				nb = b;
			any = true;
		}
		if (code || !any)
			break;
		reset_accs(s, s->accs);
		for (size_t i = 0; i < nsrc && code == 0; i++)
			code = drain_source(s, i, s->accs, nb, bucket_end(s, nb));
		code = code ? code : out_bucket(s, &o, nb, finish_row(s, s->accs));
	}
	return code ? code : out_end(s, &o);
}

/*
 * GROUP BY time over many sources: one source open at a time, drained
 * forward into a table of the buckets that get points (open addressing on
 * the bucket start), then the table sorted and output.  Memory: the table,
 * counted against max_values, instead of a cursor per source.
 */
typedef struct bucket {
	int64_t start;
	acc_t *accs;
} bucket_t;

typedef struct table {
	bucket_t *v;
	size_t len, cap;
	uint32_t *slots; /* index + 1 */
	size_t nslots;
	size_t held; /* against max_values */
} table_t;

static void table_release(agg_t *s, table_t *t)
{
	for (size_t i = 0; i < t->len; i++) {
		for (size_t f = 0; f < s->plan->nfields; f++) {
			vg_exec_unhold(s->x, t->v[i].accs[f].nvalues);
			vg_free(t->v[i].accs[f].values);
		}
		vg_free(t->v[i].accs);
	}
	vg_exec_unhold(s->x, t->held);
	vg_free(t->v);
	vg_free(t->slots);
	memset(t, 0, sizeof *t);
}

static size_t slot_of(int64_t start, size_t nslots)
{
	uint64_t h = (uint64_t)start * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 32) & (nslots - 1);
}

static int table_grow(table_t *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 256;
	uint32_t *slots = vg_calloc(nslots, sizeof *slots);
	if (!slots)
		return VG_ENOMEM;
	for (size_t i = 0; i < t->len; i++) {
		size_t j = slot_of(t->v[i].start, nslots);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = (uint32_t)i + 1;
	}
	vg_free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* The accumulators of the bucket starting at `start`, created if new. */
static int table_get(agg_t *s, table_t *t, int64_t start, acc_t **out)
{
	size_t nf = s->plan->nfields;
	if ((t->len + 1) * 2 > t->nslots && table_grow(t))
		return vg_query_error_set(s->x->err, VG_ENOMEM, "out of memory");
	size_t j = slot_of(start, t->nslots);
	for (; t->slots[j]; j = (j + 1) & (t->nslots - 1))
		if (t->v[t->slots[j] - 1].start == start) {
			*out = t->v[t->slots[j] - 1].accs;
			return 0;
		}
	/* A bucket costs about as much as 16 held values per field. */
	int code = vg_exec_hold(s->x, 16 * (nf ? nf : 1));
	if (code)
		return code;
	t->held += 16 * (nf ? nf : 1);
	if (t->len == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 128;
		bucket_t *v = vg_reallocarray(t->v, cap, sizeof *v);
		if (!v)
			return vg_query_error_set(s->x->err, VG_ENOMEM, "out of memory");
		t->v = v;
		t->cap = cap;
	}
	acc_t *accs = vg_calloc(nf ? nf : 1, sizeof *accs);
	if (!accs)
		return vg_query_error_set(s->x->err, VG_ENOMEM, "out of memory");
	t->v[t->len] = (bucket_t){start, accs};
	t->slots[j] = (uint32_t)++t->len;
	reset_accs(s, accs);
	*out = accs;
	return 0;
}

static int cmp_bucket(const void *a, const void *b)
{
	int64_t x = ((const bucket_t *)a)->start, y = ((const bucket_t *)b)->start;
	return (x > y) - (x < y);
}

static int run_table(agg_t *s)
{
	table_t t = {0};
	int code = 0;
	for (size_t i = 0; i < s->nssrc + s->nrsrc && code == 0; i++) {
		code = open_source(s, s->x, i);
		for (;;) {
			bool has;
			int64_t next;
			code = code ? code : source_next(s, i, &has, &next);
			if (code || !has)
				break;
			int64_t b = vg_bucket_start(next, s->interval, s->offset);
			acc_t *accs = NULL;
			code = table_get(s, &t, b, &accs);
			code = code ? code : drain_source(s, i, accs, b, bucket_end(s, b));
		}
		close_source(s, i);
	}
	if (code == 0 && t.len > 1)
		qsort(t.v, t.len, sizeof *t.v, cmp_bucket);
	out_t o;
	out_init(s, &o);
	for (size_t k = 0; k < t.len && code == 0; k++) {
		bucket_t *b = &t.v[s->desc ? t.len - 1 - k : k];
		code = out_bucket(s, &o, b->start, finish_row(s, b->accs));
	}
	code = code ? code : out_end(s, &o);
	table_release(s, &t);
	return code;
}

static int run_group(agg_t *s, const vg_group_t *g)
{
	vg_plan_t *plan = s->plan;
	vg_result_set_t set = {0};
	set.name = s->sel->measurement;
	set.tags = g->tags;
	set.ntags = g->ntags;
	set.columns = plan->column_names;
	set.types = plan->column_types;
	set.ncolumns = plan->ncolumns + 1;
	set.has_time = true;
	vg_emit_start(&s->emit, &set, s->sel->limit);
	vg_fill_reset(&s->fill);
	bool rows = false;
	for (size_t i = 0; i < g->count; i++)
		rows |= plan->tagsets[g->first + i].residual == VG_TRI_UNKNOWN;
	int code = make_sources(s, g, rows);
	if (code == 0 && !s->interval) {
		s->reverse = false;
		code = run_single(s);
	} else if (code == 0 && s->nssrc + s->nrsrc <= s->x->opts.max_open) {
		s->reverse = s->desc;
		code = run_buckets(s);
	} else if (code == 0) {
		s->reverse = false;
		code = run_table(s);
	}
	close_sources(s);
	if (code == 0)
		code = vg_fill_finish(&s->fill);
	if (code == 0 || code == VG_QDONE)
		code = vg_emit_end(&s->emit);
	return code;
}

/* Sets s up to aggregate groups of plan into x's sink; agg_teardown()
 * frees it, also after an error. */
static int agg_setup(agg_t *s, vg_exec_t *x, vg_plan_t *plan)
{
	memset(s, 0, sizeof *s);
	s->x = x;
	s->plan = plan;
	s->sel = plan->sel;
	s->interval = s->sel->interval_ns;
	s->offset = s->sel->offset_ns;
	s->desc = s->sel->order_desc && s->interval;
	size_t nf = plan->nfields ? plan->nfields : 1, nc = plan->ncolumns ? plan->ncolumns : 1;
	s->accs = vg_calloc(nf, sizeof *s->accs);
	s->row = vg_calloc(nc, sizeof *s->row);
	s->nulls = vg_calloc(nc, sizeof *s->nulls);
	s->gap_row = vg_calloc(nc, sizeof *s->gap_row);
	s->gap_nulls = vg_calloc(nc, sizeof *s->gap_nulls);
	for (size_t c = 0; s->gap_nulls && c < nc; c++)
		s->gap_nulls[c] = true;
	s->rvalues = vg_calloc(nf, sizeof *s->rvalues);
	s->rpresent = vg_calloc(nf, sizeof *s->rpresent);
	if (!s->accs || !s->row || !s->nulls || !s->gap_row || !s->gap_nulls || !s->rvalues ||
	    !s->rpresent)
		return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
	int code = vg_emit_init(&s->emit, x, plan->ncolumns, plan->column_types + 1, true);
	if (code)
		return code;
	s->emit_ok = true;
	code = vg_fill_init(&s->fill, x, &s->emit, s->interval ? s->sel->fill : VG_FILL_NONE,
	                    s->sel->fill_value, plan->ncolumns);
	s->fill_ok = code == 0;
	return code;
}

static void agg_teardown(agg_t *s)
{
	if (s->fill_ok)
		vg_fill_release(&s->fill);
	if (s->emit_ok)
		vg_emit_release(&s->emit);
	for (size_t f = 0; s->accs && f < s->plan->nfields; f++) {
		vg_exec_unhold(s->x, s->accs[f].nvalues);
		vg_free(s->accs[f].values);
	}
	vg_free(s->accs);
	vg_free(s->row);
	vg_free(s->nulls);
	vg_free(s->gap_row);
	vg_free(s->gap_nulls);
	vg_free(s->rvalues);
	vg_free(s->rpresent);
}

/* ---- a helper's share of the groups ------------------------------------------ */

/*
 * With GROUP BY tags the groups are independent, so a helper thread can
 * aggregate some of them while this thread does the others: this thread
 * takes groups from the front and streams them to the sink, the helper
 * takes them from the back (helpers.c) and aggregates each, in the fork of
 * this statement's read transaction (same snapshot) with its own
 * accumulators and emitter, into a record of its own; once they meet, the
 * records are replayed in group order.  The sink sees the same sets and
 * rows in the same order as without the helper.  Below
 * opts.parallel_min_series series the hand-off (tens of microseconds)
 * costs more than it saves.  The helper stops taking groups once it holds
 * SHARE_MAX_RECORDED bytes of rows, which the sink (and its bound on
 * output) has not seen yet; this thread then does the rest.
 */
#define SHARE_MAX_RECORDED ((size_t)16 << 20)

typedef struct share {
	helper_side_t h;      /* first */
	vg_plan_t *plan;
	vg_record_t *records; /* per group; the helper's groups' are filled */
} share_t;

static void run_share(vg_helper_task_t *task)
{
	share_t *sh = (share_t *)task;
	agg_t s;
	int code = agg_setup(&s, &sh->h.x, sh->plan);
	size_t g, held = 0;
	while (code == 0 && held < SHARE_MAX_RECORDED && vg_split_back(&sh->h.split, &g)) {
		sh->h.x.sink = &sh->records[g].sink;
		code = run_group(&s, &sh->plan->groups[g]);
		held += sh->records[g].bytes;
	}
	agg_teardown(&s);
	sh->h.code = code;
}

static bool worth_sharing(const vg_plan_t *plan, size_t min_series)
{
	if (plan->ngroups < 2)
		return false;
	size_t total = 0;
	for (size_t g = 0; g < plan->ngroups; g++)
		total += plan->groups[g].count;
	return total >= min_series;
}

static share_t *share_new(vg_exec_t *x, vg_plan_t *plan)
{
	share_t *sh = vg_calloc(1, sizeof *sh);
	vg_record_t *records = vg_calloc(plan->ngroups, sizeof *records);
	if (!sh || !records) {
		vg_free(sh);
		vg_free(records);
		return NULL;
	}
	helper_side_init(&sh->h, x, run_share, plan->ngroups);
	sh->plan = plan;
	sh->records = records;
	for (size_t g = 0; g < plan->ngroups; g++)
		vg_record_init(&records[g]);
	return sh;
}

static void share_free(share_t *sh)
{
	for (size_t g = 0; g < sh->plan->ngroups; g++)
		vg_record_release(&sh->records[g]);
	vg_free(sh->records);
	vg_split_release(&sh->h.split);
	vg_free(sh);
}

int vg_exec_aggregate(vg_exec_t *x, vg_plan_t *plan)
{
	share_t *sh = NULL;
	if (x->fork && worth_sharing(plan, x->opts.parallel_min_series))
		sh = share_new(x, plan);
	/* The two threads share the statement's bound on held values. */
	size_t max_values = x->opts.max_values;
	if (sh)
		sh->h.x.opts.max_values = max_values / 2;
	if (sh && !vg_helpers_try_start(x->opts.helpers, &sh->h.task)) {
		share_free(sh);
		sh = NULL;
	}
	/* The helper reads in the fork now: this thread must not lend it out
	 * again (run_buckets). */
	vg_rtxn_t *fork = x->fork;
	if (sh) {
		x->fork = NULL;
		x->opts.max_values = max_values - max_values / 2;
	}
	agg_t s;
	int code = agg_setup(&s, x, plan);
	size_t g = 0;
	if (!sh) {
		for (g = 0; code == 0 && g < plan->ngroups; g++)
			code = run_group(&s, &plan->groups[g]);
		agg_teardown(&s);
		return code;
	}
	while (code == 0 && vg_split_front(&sh->h.split, &g))
		code = run_group(&s, &plan->groups[g]);
	/* What the helper left (it stops at SHARE_MAX_RECORDED, and an even
	 * split stops this thread at the middle) is this thread's, before the
	 * helper's groups. */
	code = helper_side_join(&sh->h, x, code);
	while (code == 0 && vg_split_front(&sh->h.split, &g))
		code = run_group(&s, &plan->groups[g]);
	agg_teardown(&s);
	x->opts.max_values = max_values;
	x->fork = fork;
	/* The helper's groups are [back, ngroups): it took them from the back. */
	for (g = sh->h.split.back; code == 0 && g < plan->ngroups; g++)
		code = vg_record_replay(&sh->records[g], x->sink);
	if (code == 0) {
		x->stats->rows_emitted += sh->h.stats.rows_emitted;
		x->stats->groups_shared += plan->ngroups - sh->h.split.back;
	}
	share_free(sh);
	return code;
}
