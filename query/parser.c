/*
 * parser.c — tokens to a vg_statement_t, by recursive descent.
 *
 * One token of lookahead (p->tok) is enough for the whole grammar of
 * vg_query.h.  Keywords are contextual: an identifier is compared to a
 * keyword only where the grammar allows that keyword, so `SELECT count FROM
 * m` reads a field named count.  Errors say what was expected and what was
 * found, at the found token's position; checks that need the whole
 * statement (aggregates mixed with raw fields, FILL without GROUP BY time,
 * time under OR, ...) run after the statement is read, at the position of
 * the part at fault.
 *
 * Everything a statement keeps (names, unescaped strings, the condition
 * tree, columns) is allocated from its arena, a list of blocks freed at
 * once by vg_query_free(); compiled regexes are listed separately because
 * they own memory of their own (regfree).
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- arena ------------------------------------------------------------ */

struct vg_arena_block {
	vg_arena_block_t *next;
	size_t used, cap;
	alignas(max_align_t) unsigned char data[];
};

#define VG_ARENA_BLOCK 4096

void vg_arena_init(vg_arena_t *a)
{
	a->head = NULL;
}

void vg_arena_release(vg_arena_t *a)
{
	vg_arena_block_t *b = a->head;
	while (b) {
		vg_arena_block_t *next = b->next;
		vg_free(b);
		b = next;
	}
	a->head = NULL;
}

void *vg_arena_alloc(vg_arena_t *a, size_t size)
{
	const size_t align = alignof(max_align_t);
	if (size > SIZE_MAX / 2)
		return NULL;
	size = (size + align - 1) & ~(align - 1);
	if (size == 0)
		size = align;
	vg_arena_block_t *b = a->head;
	if (!b || b->cap - b->used < size) {
		size_t cap = size > VG_ARENA_BLOCK / 2 ? size : VG_ARENA_BLOCK;
		b = vg_malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		/* A big private block goes behind the head so that the head's
		 * free space stays usable. */
		if (a->head && cap != VG_ARENA_BLOCK) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = b->data + b->used;
	b->used += size;
	memset(p, 0, size);
	return p;
}

void *vg_arena_array(vg_arena_t *a, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / 2 / size)
		return NULL;
	return vg_arena_alloc(a, count * size);
}

int vg_arena_str(vg_arena_t *a, const char *s, size_t len, vg_str_t *out)
{
	char *p = vg_arena_alloc(a, len + 1);
	if (!p)
		return VG_ENOMEM;
	if (len)
		memcpy(p, s, len);
	p[len] = 0;
	*out = (vg_str_t){p, len};
	return 0;
}

int vg_name_list_add(void *list, vg_str_t name)
{
	vg_name_list_t *l = list;
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		vg_str_t *v = vg_arena_array(l->arena, cap, sizeof *v);
		if (!v)
			return VG_ENOMEM;
		if (l->len)
			memcpy(v, l->v, l->len * sizeof *v);
		l->v = v;
		l->cap = cap;
	}
	return vg_arena_str(l->arena, name.data, name.len, &l->v[l->len++]);
}

/* ---- the parser -------------------------------------------------------- */

/* A WHERE tree is walked recursively (here and by the executor), so its
 * size is bounded: at most this many leaves and this much nesting. */
#define VG_QUERY_MAX_CONDITIONS 256
#define VG_QUERY_MAX_DEPTH 32

typedef struct parser {
	vg_lexer_t lx;
	vg_token_t tok;
	vg_statement_t *st;
	vg_query_error_t *err;
	/* Positions of clauses, for checks after the statement is read. */
	vg_token_t into_tok, group_time_tok, fill_tok;
	bool has_into;
	/* Limits that keep the recursive passes over a WHERE tree shallow. */
	unsigned depth, leaves;
} parser_t;

static int advance(parser_t *p)
{
	return vg_lex_next(&p->lx, &p->tok);
}

static bool is_kw(const vg_token_t *t, const char *kw)
{
	return t->kind == VG_TOK_IDENT && t->text.len == strlen(kw) &&
	       strncasecmp(t->text.data, kw, t->text.len) == 0;
}

static int nomem(parser_t *p)
{
	return vg_query_error_set(p->err, VG_ENOMEM, "out of memory");
}

/* "expected X, found 'Y'" at the current token. */
static int expected(parser_t *p, const char *what)
{
	const vg_token_t *t = &p->tok;
	if (t->kind == VG_TOK_EOF)
		return vg_query_error_at(p->err, VG_ESYNTAX, t->line, t->column,
		                         "expected %s, found end of input", what);
	int len = (int)(t->raw_len > 40 ? 40 : t->raw_len);
	const char *more = t->raw_len > 40 ? "..." : "";
	bool quoted =
	    t->kind == VG_TOK_STRING || t->kind == VG_TOK_QIDENT || t->kind == VG_TOK_REGEX;
	return vg_query_error_at(p->err, VG_ESYNTAX, t->line, t->column,
	                         quoted ? "expected %s, found %.*s%s"
	                                : "expected %s, found '%.*s%s'",
	                         what, len, t->raw, more);
}

static int invalid(parser_t *p, const vg_token_t *at, const char *msg)
{
	return vg_query_error_at(p->err, VG_EINVAL, at->line, at->column, "%s", msg);
}

static int expect_kw(parser_t *p, const char *kw)
{
	if (!is_kw(&p->tok, kw))
		return expected(p, kw);
	return advance(p);
}

static int expect_tok(parser_t *p, vg_tok_kind_t kind, const char *what)
{
	if (p->tok.kind != kind)
		return expected(p, what);
	return advance(p);
}

static bool is_name(const vg_token_t *t)
{
	return t->kind == VG_TOK_IDENT || t->kind == VG_TOK_QIDENT;
}

/* An identifier (bare or quoted) copied into the arena. */
static int parse_name(parser_t *p, const char *what, vg_str_t *out)
{
	if (!is_name(&p->tok))
		return expected(p, what);
	if (p->tok.text.len > VG_STORE_NAME_MAX)
		return invalid(p, &p->tok, "name longer than 255 bytes");
	if (vg_arena_str(&p->st->arena, p->tok.text.data, p->tok.text.len, out))
		return nomem(p);
	return advance(p);
}

static bool is_time_name(const vg_token_t *t)
{
	return is_kw(t, "time") || (t->kind == VG_TOK_QIDENT && t->text.len == 4 &&
	                            memcmp(t->text.data, "time", 4) == 0);
}

/* A possibly signed number: INT or FLOAT. */
static int parse_number(parser_t *p, const char *what, double *out)
{
	double sign = 1;
	if (p->tok.kind == VG_TOK_MINUS || p->tok.kind == VG_TOK_PLUS) {
		sign = p->tok.kind == VG_TOK_MINUS ? -1 : 1;
		int code = advance(p);
		if (code)
			return code;
	}
	if (p->tok.kind != VG_TOK_INT && p->tok.kind != VG_TOK_FLOAT)
		return expected(p, what);
	*out = sign * p->tok.fval;
	return advance(p);
}

/* A duration, optionally negative when `sign_ok`. */
static int parse_duration(parser_t *p, const char *what, bool sign_ok, int64_t *out)
{
	int64_t sign = 1;
	if (sign_ok && p->tok.kind == VG_TOK_MINUS) {
		sign = -1;
		int code = advance(p);
		if (code)
			return code;
	}
	if (p->tok.kind != VG_TOK_DURATION)
		return expected(p, what);
	*out = sign * p->tok.ival;
	return advance(p);
}

/*
 * What a regex may cost before regcomp() sees it.  glibc's regcomp expands
 * repetition by copying the repeated part of the tree: a+ becomes a a*,
 * a{1,100} a hundred copies, and stacked or nested repetitions multiply,
 * so /x++++++++++++++++++++++++++++++/ (2^30 copies) or /((a{99}){99}){99}/
 * exhaust the memory of the server that parses them (found by
 * fuzz/fuzz_query.c).  regex_check() walks the source once, estimating
 * the size of the expanded tree from the same rules, and refuses:
 *   - a repetition operator right after another (POSIX leaves "a**"
 *     undefined; no pattern needs it);
 *   - a count in {m,n} above VG_REGEX_MAX_REPEAT;
 *   - an estimated expansion over VG_REGEX_MAX_COST atoms;
 *   - back-references \1..\9 (not POSIX ERE; glibc matches them by
 *     backtracking, exponential in the tag value's length);
 *   - more than VG_REGEX_MAX_BYTES bytes or groups nested deeper than
 *     VG_QUERY_MAX_DEPTH.
 * Everything else — syntax errors included — is left to regcomp().
 */
#define VG_REGEX_MAX_BYTES 1024
#define VG_REGEX_MAX_REPEAT 1000
#define VG_REGEX_MAX_COST 10000

/* Reads {m}, {m,}, {m,n} or glibc's {,n} (m = 0) at s[*i] ('{'); false if
 * it is not an interval (regcomp then decides what the brace means). */
static bool regex_interval(const char *s, size_t len, size_t *i, uint64_t *count)
{
	size_t j = *i + 1;
	uint64_t m = 0, n = 0;
	bool digits = false, comma = false, ndigits = false;
	for (; j < len && s[j] >= '0' && s[j] <= '9'; j++, digits = true)
		m = m > 100000 ? m : m * 10 + (uint64_t)(s[j] - '0');
	if (j < len && s[j] == ',') {
		comma = true;
		for (j++; j < len && s[j] >= '0' && s[j] <= '9'; j++, ndigits = true)
			n = n > 100000 ? n : n * 10 + (uint64_t)(s[j] - '0');
	}
	if ((!digits && !comma) || j >= len || s[j] != '}')
		return false;
	*count = comma && !ndigits ? m + 1 : (n > m ? n : m);
	*i = j;
	return true;
}

/* The index of the ']' closing the bracket expression at s[i] ('['), or len. */
static size_t regex_bracket_end(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;
	if (j < len && s[j] == '^')
		j++;
	if (j < len && s[j] == ']')
		j++; /* a leading ']' is a member */
	for (; j < len && s[j] != ']'; j++) {
		if (s[j] == '[' && j + 1 < len &&
		    (s[j + 1] == ':' || s[j + 1] == '=' || s[j + 1] == '.')) {
			char kind = s[j + 1];
			for (j += 2; j + 1 < len && !(s[j] == kind && s[j + 1] == ']'); j++)
				;
			j++; /* on the class's ']' */
		}
	}
	return j < len ? j : len;
}

static int regex_check(const char *s, size_t len, char *why, size_t whylen)
{
	uint64_t seq[VG_QUERY_MAX_DEPTH + 1], last[VG_QUERY_MAX_DEPTH + 1];
	size_t depth = 0;
	bool repeated = false; /* the previous token was a repetition */
	if (len > VG_REGEX_MAX_BYTES) {
		snprintf(why, whylen, "%zu bytes, more than %d", len, VG_REGEX_MAX_BYTES);
		return VG_EINVAL;
	}
	seq[0] = last[0] = 0;
	for (size_t i = 0; i < len; i++) {
		uint64_t atom = 1, count = 0;
		switch (s[i]) {
		case '\\':
			if (i + 1 < len && s[i + 1] >= '1' && s[i + 1] <= '9') {
				snprintf(why, whylen,
				         "back-reference \\%c at byte %zu is not supported",
				         s[i + 1], i);
				return VG_EINVAL;
			}
			i++;
			break;
		case '[':
			i = regex_bracket_end(s, len, i);
			break;
		case '(':
			if (depth == VG_QUERY_MAX_DEPTH) {
				snprintf(why, whylen, "groups nested deeper than %d",
				         VG_QUERY_MAX_DEPTH);
				return VG_EINVAL;
			}
			depth++;
			seq[depth] = last[depth] = 0;
			repeated = false;
			continue;
		case ')':
			if (depth > 0) {
				atom = seq[depth] + 1;
				depth--;
			}
			break;
		case '|':
			last[depth] = 0;
			repeated = false;
			continue;
		case '*':
		case '?':
			count = 1;
			break;
		case '+':
			count = 2;
			break;
		case '{':
			if (!regex_interval(s, len, &i, &count))
				break;
			if (count > VG_REGEX_MAX_REPEAT) {
				snprintf(why, whylen, "repetition count at byte %zu is over %d", i,
				         VG_REGEX_MAX_REPEAT);
				return VG_EINVAL;
			}
			count = count ? count : 1;
			break;
		default:
			break;
		}
		if (count) {
			if (repeated) {
				snprintf(
				    why, whylen,
				    "repetition operator at byte %zu follows another repetition",
				    i);
				return VG_EINVAL;
			}
			repeated = true;
			/* The last atom now stands for `count` copies of itself. */
			seq[depth] += last[depth] * (count - 1);
			last[depth] *= count;
		} else {
			repeated = false;
			seq[depth] += atom;
			last[depth] = atom;
		}
		if (seq[depth] > VG_REGEX_MAX_COST) {
			snprintf(why, whylen,
			         "too many repetitions: it would expand to more than %d atoms",
			         VG_REGEX_MAX_COST);
			return VG_EINVAL;
		}
	}
	return 0;
}

static int add_regex(parser_t *p, const vg_token_t *at, const vg_str_t *source, const regex_t **out)
{
	vg_statement_t *st = p->st;
	if (st->nregexes == st->regexes_cap) {
		size_t cap = st->regexes_cap ? st->regexes_cap * 2 : 4;
		regex_t **v = vg_reallocarray(st->regexes, cap, sizeof *v);
		if (!v)
			return nomem(p);
		st->regexes = v;
		st->regexes_cap = cap;
	}
	regex_t *re = vg_malloc(sizeof *re);
	if (!re)
		return nomem(p);
	/* source is NUL-terminated (arena copy); an embedded NUL would cut it. */
	if (memchr(source->data, 0, source->len)) {
		vg_free(re);
		return invalid(p, at, "regex contains a NUL byte");
	}
	char why[128];
	if (regex_check(source->data, source->len, why, sizeof why)) {
		vg_free(re);
		return vg_query_error_at(p->err, VG_EINVAL, at->line, at->column,
		                         "regex %.*s refused: %s",
		                         (int)(at->raw_len > 60 ? 60 : at->raw_len), at->raw, why);
	}
	int rc = regcomp(re, source->data, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, re, why, sizeof why);
		vg_free(re);
		return vg_query_error_at(p->err, VG_EINVAL, at->line, at->column,
		                         "invalid regex %.*s: %s",
		                         (int)(at->raw_len > 60 ? 60 : at->raw_len), at->raw, why);
	}
	st->regexes[st->nregexes++] = re;
	*out = re;
	return 0;
}

/* ---- times -------------------------------------------------------------- */

/* time := (INT | -INT | DURATION | 'RFC 3339' | now()) {(+|-) DURATION} */
static int parse_time(parser_t *p, vg_time_expr_t *out)
{
	vg_token_t start = p->tok;
	int code;
	out->now = false;
	out->ns = 0;
	if (p->tok.kind == VG_TOK_MINUS) {
		code = advance(p);
		if (code)
			return code;
		if (p->tok.kind != VG_TOK_INT)
			return expected(p, "integer");
		if (p->tok.overflow)
			return invalid(p, &p->tok, "time out of range");
		out->ns = -p->tok.ival;
		code = advance(p);
	} else if (p->tok.kind == VG_TOK_INT) {
		if (p->tok.overflow)
			return invalid(p, &p->tok, "time out of range");
		out->ns = p->tok.ival;
		code = advance(p);
	} else if (p->tok.kind == VG_TOK_DURATION) {
		out->ns = p->tok.ival;
		code = advance(p);
	} else if (p->tok.kind == VG_TOK_STRING) {
		const char *why = NULL;
		code = vg_query_parse_time(p->tok.text.data, p->tok.text.len, &out->ns, &why);
		if (code == VG_ELIMIT)
			return invalid(p, &p->tok, "time out of range (1677-09-21 .. 2262-04-11)");
		if (code)
			return vg_query_error_at(p->err, VG_EINVAL, p->tok.line, p->tok.column,
			                         "invalid time %.*s: %s",
			                         (int)(p->tok.raw_len > 60 ? 60 : p->tok.raw_len),
			                         p->tok.raw, why ? why : "not RFC 3339");
		code = advance(p);
	} else if (is_kw(&p->tok, "now")) {
		code = advance(p);
		code = code ? code : expect_tok(p, VG_TOK_LPAREN, "'('");
		code = code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
		out->now = true;
	} else {
		return expected(p, "time (integer ns, 'RFC 3339' or now())");
	}
	while (code == 0 && (p->tok.kind == VG_TOK_PLUS || p->tok.kind == VG_TOK_MINUS)) {
		bool minus = p->tok.kind == VG_TOK_MINUS;
		code = advance(p);
		if (code)
			break;
		if (p->tok.kind != VG_TOK_DURATION)
			return expected(p, "duration");
		int64_t d = p->tok.ival;
		if (vg_time_add(out->ns, minus ? -d : d, &out->ns))
			return invalid(p, &start, "time out of range");
		code = advance(p);
	}
	return code;
}

/* ---- conditions ------------------------------------------------------- */

static int parse_or(parser_t *p, const vg_cond_t **out);

static vg_cond_t *new_cond(parser_t *p, vg_cond_kind_t kind, const vg_token_t *at)
{
	vg_cond_t *c = vg_arena_alloc(&p->st->arena, sizeof *c);
	if (c) {
		c->kind = kind;
		c->line = at->line;
		c->column = at->column;
	}
	return c;
}

static int parse_leaf(parser_t *p, const vg_cond_t **out)
{
	int code;
	if (p->tok.kind == VG_TOK_LPAREN) {
		if (++p->depth > VG_QUERY_MAX_DEPTH)
			return invalid(p, &p->tok, "conditions nested too deeply (limit 32)");
		code = advance(p);
		code = code ? code : parse_or(p, out);
		p->depth--;
		return code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
	}
	if (!is_name(&p->tok))
		return expected(p, "condition");
	if (++p->leaves > VG_QUERY_MAX_CONDITIONS)
		return invalid(p, &p->tok, "too many conditions (limit 256)");
	vg_token_t lhs = p->tok;
	bool is_time = is_time_name(&lhs);
	vg_str_t name;
	code = parse_name(p, "condition", &name);
	if (code)
		return code;
	vg_token_t op_tok = p->tok;
	vg_cmp_op_t op;
	switch (p->tok.kind) {
	case VG_TOK_EQ:
		op = VG_CMP_EQ;
		break;
	case VG_TOK_NE:
		op = VG_CMP_NE;
		break;
	case VG_TOK_LT:
		op = VG_CMP_LT;
		break;
	case VG_TOK_LE:
		op = VG_CMP_LE;
		break;
	case VG_TOK_GT:
		op = VG_CMP_GT;
		break;
	case VG_TOK_GE:
		op = VG_CMP_GE;
		break;
	case VG_TOK_EQRE:
		op = VG_CMP_RE;
		break;
	case VG_TOK_NERE:
		op = VG_CMP_NRE;
		break;
	default:
		return expected(p, "comparison operator");
	}
	code = advance(p);
	if (code)
		return code;
	vg_cond_t *c;
	if (is_time) {
		if (op == VG_CMP_NE || op == VG_CMP_RE || op == VG_CMP_NRE)
			return invalid(p, &op_tok, "time conditions support =, <, <=, > and >=");
		c = new_cond(p, VG_COND_TIME, &lhs);
		if (!c)
			return nomem(p);
		c->op = op;
		c->name = name;
		code = parse_time(p, &c->time);
	} else if (op == VG_CMP_RE || op == VG_CMP_NRE) {
		if (p->tok.kind != VG_TOK_REGEX)
			return expected(p, "regex /.../");
		c = new_cond(p, VG_COND_TAG, &lhs);
		if (!c)
			return nomem(p);
		c->op = op;
		c->name = name;
		c->value = p->tok.text;
		code = add_regex(p, &p->tok, &c->value, &c->regex);
		code = code ? code : advance(p);
	} else if (p->tok.kind == VG_TOK_STRING) {
		if (op != VG_CMP_EQ && op != VG_CMP_NE)
			return invalid(p, &op_tok, "tag conditions support =, !=, =~ and !~");
		c = new_cond(p, VG_COND_TAG, &lhs);
		if (!c)
			return nomem(p);
		c->op = op;
		c->name = name;
		c->value = p->tok.text;
		code = advance(p);
	} else if (p->tok.kind == VG_TOK_REGEX) {
		return invalid(p, &op_tok, "a regex needs =~ or !~");
	} else {
		c = new_cond(p, VG_COND_FIELD, &lhs);
		if (!c)
			return nomem(p);
		c->op = op;
		c->name = name;
		code = parse_number(p, "string, regex or number", &c->number);
	}
	*out = c;
	return code;
}

static int parse_binary(parser_t *p, const vg_cond_t **out, bool is_or)
{
	const vg_cond_t *left;
	int code = is_or ? parse_binary(p, &left, false) : parse_leaf(p, &left);
	while (code == 0 && is_kw(&p->tok, is_or ? "OR" : "AND")) {
		vg_token_t at = p->tok;
		code = advance(p);
		const vg_cond_t *right = NULL;
		code = code ? code : is_or ? parse_binary(p, &right, false) : parse_leaf(p, &right);
		if (code)
			break;
		vg_cond_t *c = new_cond(p, is_or ? VG_COND_OR : VG_COND_AND, &at);
		if (!c)
			return nomem(p);
		c->left = left;
		c->right = right;
		left = c;
	}
	*out = left;
	return code;
}

static int parse_or(parser_t *p, const vg_cond_t **out)
{
	return parse_binary(p, out, true);
}

/* Time leaves only under AND; `allowed` limits the leaf kinds. */
static int check_cond(parser_t *p, const vg_cond_t *c, bool under_or, bool field_ok, bool time_ok,
                      const char *what)
{
	switch (c->kind) {
	case VG_COND_AND:
	case VG_COND_OR: {
		bool o = under_or || c->kind == VG_COND_OR;
		int code = check_cond(p, c->left, o, field_ok, time_ok, what);
		return code ? code : check_cond(p, c->right, o, field_ok, time_ok, what);
	}
	case VG_COND_TIME:
		if (!time_ok)
			return vg_query_error_at(p->err, VG_EINVAL, c->line, c->column, "%s", what);
		if (under_or)
			return vg_query_error_at(p->err, VG_EINVAL, c->line, c->column,
			                         "time conditions cannot be combined with OR");
		return 0;
	case VG_COND_FIELD:
		if (!field_ok)
			return vg_query_error_at(p->err, VG_EINVAL, c->line, c->column, "%s", what);
		return 0;
	default:
		return 0;
	}
}

/* ---- SELECT --------------------------------------------------------------- */

static const char *const agg_names[] = {
    "",     "count",  "sum",    "min",    "max",        "mean", "first",
    "last", "spread", "stddev", "median", "percentile", "rate",
};

const char *vg_agg_fn_name(vg_agg_fn_t fn)
{
	if ((size_t)fn < sizeof agg_names / sizeof agg_names[0])
		return agg_names[fn];
	return "";
}

static vg_agg_fn_t agg_lookup(const vg_str_t *name)
{
	for (size_t i = 1; i < sizeof agg_names / sizeof agg_names[0]; i++)
		if (strlen(agg_names[i]) == name->len &&
		    strncasecmp(agg_names[i], name->data, name->len) == 0)
			return (vg_agg_fn_t)i;
	return VG_AGG_NONE;
}

typedef struct column_list {
	vg_select_column_t *v;
	vg_token_t *at; /* where each column starts */
	size_t len, cap;
} column_list_t;

/* column := * | field | fn '(' (field | *) [, arg] ')' [AS name] */
static int parse_column(parser_t *p, vg_select_column_t *col, bool *skip)
{
	int code;
	*skip = false;
	if (p->tok.kind == VG_TOK_STAR) {
		col->wildcard = true;
		return advance(p);
	}
	if (!is_name(&p->tok))
		return expected(p, "field, function or *");
	vg_token_t first = p->tok;
	vg_str_t word;
	code = parse_name(p, "field, function or *", &word);
	if (code)
		return code;
	if (p->tok.kind == VG_TOK_LPAREN && first.kind == VG_TOK_IDENT) {
		col->agg = agg_lookup(&word);
		if (col->agg == VG_AGG_NONE)
			return vg_query_error_at(p->err, VG_EINVAL, first.line, first.column,
			                         "unknown function '%.*s'", (int)word.len,
			                         word.data);
		code = advance(p);
		if (code)
			return code;
		if (p->tok.kind == VG_TOK_STAR) {
			col->wildcard = true;
			code = advance(p);
		} else {
			code = parse_name(p, "field or *", &col->field);
		}
		if (code)
			return code;
		if (col->agg == VG_AGG_PERCENTILE) {
			code = expect_tok(p, VG_TOK_COMMA, "','");
			vg_token_t at = p->tok;
			code =
			    code ? code : parse_number(p, "percentile (0..100)", &col->percentile);
			if (code == 0 && !(col->percentile >= 0 && col->percentile <= 100))
				return invalid(p, &at, "percentile must be between 0 and 100");
		} else if (col->agg == VG_AGG_RATE) {
			col->rate_unit_ns = INT64_C(1000000000);
			if (p->tok.kind == VG_TOK_COMMA) {
				code = advance(p);
				vg_token_t at = p->tok;
				code =
				    code ? code
				         : parse_duration(p, "duration", false, &col->rate_unit_ns);
				if (code == 0 && col->rate_unit_ns <= 0)
					return invalid(p, &at, "rate duration must be positive");
			}
		}
		code = code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
	} else {
		if (is_time_name(&first) && first.kind == VG_TOK_IDENT && !is_kw(&p->tok, "AS"))
			*skip = true; /* SELECT time, x: time is always the first column */
		col->field = word;
	}
	if (code == 0 && is_kw(&p->tok, "AS")) {
		vg_token_t as = p->tok;
		code = advance(p);
		code = code ? code : parse_name(p, "alias", &col->alias);
		if (code == 0 && col->wildcard)
			return invalid(p, &as, "a wildcard cannot have an alias");
	}
	if (code)
		return code;
	/* The output name. */
	vg_buf_t b = VG_BUF_INIT;
	if (col->alias.len)
		code = vg_buf_append(&b, col->alias.data, col->alias.len);
	else if (!col->wildcard && col->agg != VG_AGG_NONE)
		code = vg_buf_printf(&b, "%s_%.*s", vg_agg_fn_name(col->agg), (int)col->field.len,
		                     col->field.data);
	else if (!col->wildcard)
		code = vg_buf_append(&b, col->field.data, col->field.len);
	if (code == 0)
		code = vg_arena_str(&p->st->arena, b.len ? (const char *)b.data : "", b.len,
		                    &col->name);
	vg_buf_release(&b);
	return code ? nomem(p) : 0;
}

static int parse_columns(parser_t *p, vg_select_t *sel, vg_token_t *first_raw,
                         vg_token_t *first_agg)
{
	column_list_t list = {0};
	int code = 0;
	bool have_raw = false, have_agg = false;
	for (;;) {
		if (list.len == list.cap) {
			size_t cap = list.cap ? list.cap * 2 : 8;
			vg_select_column_t *v = vg_arena_array(&p->st->arena, cap, sizeof *v);
			if (!v)
				return nomem(p);
			if (list.len)
				memcpy(v, list.v, list.len * sizeof *v);
			list.v = v;
			list.cap = cap;
		}
		vg_token_t at = p->tok;
		vg_select_column_t col = {0};
		bool skip;
		code = parse_column(p, &col, &skip);
		if (code)
			return code;
		if (!skip) {
			if (col.agg == VG_AGG_NONE && !have_raw) {
				have_raw = true;
				*first_raw = at;
			}
			if (col.agg != VG_AGG_NONE && !have_agg) {
				have_agg = true;
				*first_agg = at;
			}
			list.v[list.len++] = col;
		}
		if (p->tok.kind != VG_TOK_COMMA)
			break;
		code = advance(p);
		if (code)
			return code;
	}
	if (list.len == 0)
		return invalid(p, first_raw, "SELECT needs at least one field");
	if (have_raw && have_agg)
		return invalid(p, first_raw, "cannot mix aggregate functions and raw fields");
	sel->columns = list.v;
	sel->ncolumns = list.len;
	sel->aggregate = have_agg;
	return 0;
}

static int parse_group_by(parser_t *p, vg_select_t *sel)
{
	vg_str_t *tags = NULL;
	size_t ntags = 0, cap = 0;
	int code = 0;
	bool have_time = false;
	for (;;) {
		vg_token_t at = p->tok;
		if (p->tok.kind == VG_TOK_STAR) {
			sel->group_all_tags = true;
			code = advance(p);
		} else if (is_kw(&p->tok, "time")) {
			if (have_time)
				return invalid(p, &at, "GROUP BY time(...) appears twice");
			have_time = true;
			p->group_time_tok = at;
			code = advance(p);
			code = code ? code : expect_tok(p, VG_TOK_LPAREN, "'('");
			vg_token_t dur = p->tok;
			code =
			    code ? code : parse_duration(p, "duration", false, &sel->interval_ns);
			if (code == 0 && sel->interval_ns <= 0)
				return invalid(p, &dur, "GROUP BY time interval must be positive");
			if (code == 0 && p->tok.kind == VG_TOK_COMMA) {
				code = advance(p);
				int64_t off = 0;
				if (code == 0 && p->tok.kind == VG_TOK_INT && p->tok.ival == 0)
					code = advance(p);
				else if (code == 0)
					code = parse_duration(p, "offset duration", true, &off);
				if (code == 0) {
					off %= sel->interval_ns;
					if (off < 0)
						off += sel->interval_ns;
					sel->offset_ns = off;
				}
			}
			code = code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
		} else {
			vg_str_t name;
			code = parse_name(p, "tag, time(...) or *", &name);
			for (size_t i = 0; code == 0 && i < ntags; i++)
				if (tags[i].len == name.len &&
				    memcmp(tags[i].data, name.data, name.len) == 0)
					return invalid(p, &at, "tag appears twice in GROUP BY");
			if (code == 0 && ntags == cap) {
				cap = cap ? cap * 2 : 4;
				vg_str_t *v = vg_arena_array(&p->st->arena, cap, sizeof *v);
				if (!v)
					return nomem(p);
				if (ntags)
					memcpy(v, tags, ntags * sizeof *v);
				tags = v;
			}
			if (code == 0)
				tags[ntags++] = name;
		}
		if (code || p->tok.kind != VG_TOK_COMMA)
			break;
		code = advance(p);
		if (code)
			break;
	}
	sel->group_tags = tags;
	sel->ngroup_tags = ntags;
	return code;
}

static int parse_fill(parser_t *p, vg_select_t *sel)
{
	p->fill_tok = p->tok;
	int code = advance(p);
	code = code ? code : expect_tok(p, VG_TOK_LPAREN, "'('");
	if (code)
		return code;
	if (is_kw(&p->tok, "none"))
		sel->fill = VG_FILL_NONE;
	else if (is_kw(&p->tok, "null"))
		sel->fill = VG_FILL_NULL;
	else if (is_kw(&p->tok, "previous"))
		sel->fill = VG_FILL_PREVIOUS;
	else if (is_kw(&p->tok, "linear"))
		sel->fill = VG_FILL_LINEAR;
	else {
		sel->fill = VG_FILL_VALUE;
		code =
		    parse_number(p, "none, null, previous, linear or a number", &sel->fill_value);
		return code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
	}
	code = advance(p);
	return code ? code : expect_tok(p, VG_TOK_RPAREN, "')'");
}

/* SELECT ... up to (not including) what follows LIMIT. */
static int parse_select(parser_t *p, vg_select_t *sel)
{
	vg_token_t first_raw = p->tok, first_agg = p->tok;
	int code = expect_kw(p, "SELECT");
	code = code ? code : parse_columns(p, sel, &first_raw, &first_agg);
	if (code)
		return code;
	if (is_kw(&p->tok, "INTO")) {
		p->has_into = true;
		p->into_tok = p->tok;
		code = advance(p);
		code = code ? code : parse_name(p, "measurement", &sel->into);
		if (code)
			return code;
	}
	code = expect_kw(p, "FROM");
	code = code ? code : parse_name(p, "measurement", &sel->measurement);
	if (code == 0 && is_kw(&p->tok, "WHERE")) {
		code = advance(p);
		code = code ? code : parse_or(p, &sel->where);
		code = code ? code : check_cond(p, sel->where, false, true, true, "");
	}
	if (code == 0 && is_kw(&p->tok, "GROUP")) {
		code = advance(p);
		code = code ? code : expect_kw(p, "BY");
		code = code ? code : parse_group_by(p, sel);
	}
	if (code == 0 && is_kw(&p->tok, "FILL"))
		code = parse_fill(p, sel);
	if (code == 0 && is_kw(&p->tok, "ORDER")) {
		code = advance(p);
		code = code ? code : expect_kw(p, "BY");
		if (code == 0 && !is_kw(&p->tok, "time"))
			return expected(p, "time");
		code = code ? code : advance(p);
		if (code == 0 && (is_kw(&p->tok, "ASC") || is_kw(&p->tok, "DESC"))) {
			sel->order_desc = is_kw(&p->tok, "DESC");
			code = advance(p);
		}
	}
	if (code == 0 && is_kw(&p->tok, "LIMIT")) {
		code = advance(p);
		if (code)
			return code;
		if (p->tok.kind != VG_TOK_INT)
			return expected(p, "integer");
		if (p->tok.overflow)
			return invalid(p, &p->tok, "LIMIT out of range");
		sel->limit = (uint64_t)p->tok.ival;
		code = advance(p);
	}
	if (code)
		return code;
	/* Checks that need the whole SELECT. */
	if (sel->interval_ns && !sel->aggregate)
		return invalid(p, &p->group_time_tok,
		               "GROUP BY time(...) needs aggregate functions in SELECT");
	if (p->fill_tok.raw && !sel->interval_ns)
		return invalid(p, &p->fill_tok, "FILL needs GROUP BY time(...)");
	return 0;
}

/* ---- statements --------------------------------------------------------- */

/* [FROM m] */
static int parse_opt_from(parser_t *p)
{
	if (!is_kw(&p->tok, "FROM"))
		return 0;
	int code = advance(p);
	return code ? code : parse_name(p, "measurement", &p->st->measurement);
}

static int parse_show(parser_t *p)
{
	vg_statement_t *st = p->st;
	int code = advance(p);
	if (code)
		return code;
	if (is_kw(&p->tok, "MEASUREMENTS")) {
		st->kind = VG_STMT_SHOW_MEASUREMENTS;
		return advance(p);
	}
	if (is_kw(&p->tok, "STATS")) {
		st->kind = VG_STMT_SHOW_STATS;
		return advance(p);
	}
	if (is_kw(&p->tok, "RETENTION")) {
		st->kind = VG_STMT_SHOW_RETENTION;
		return advance(p);
	}
	if (is_kw(&p->tok, "CONTINUOUS")) {
		st->kind = VG_STMT_SHOW_CQS;
		code = advance(p);
		return code ? code : expect_kw(p, "QUERIES");
	}
	if (is_kw(&p->tok, "SERIES")) {
		st->kind = VG_STMT_SHOW_SERIES;
		code = advance(p);
		code = code ? code : parse_opt_from(p);
		if (code == 0 && is_kw(&p->tok, "WHERE")) {
			code = advance(p);
			code = code ? code : parse_or(p, &st->where);
			code = code ? code
			            : check_cond(p, st->where, false, false, false,
			                         "SHOW SERIES supports only tag conditions");
		}
		return code;
	}
	if (is_kw(&p->tok, "FIELD")) {
		st->kind = VG_STMT_SHOW_FIELD_KEYS;
		code = advance(p);
		code = code ? code : expect_kw(p, "KEYS");
		return code ? code : parse_opt_from(p);
	}
	if (is_kw(&p->tok, "TAG")) {
		code = advance(p);
		if (code)
			return code;
		if (is_kw(&p->tok, "KEYS")) {
			st->kind = VG_STMT_SHOW_TAG_KEYS;
			code = advance(p);
			return code ? code : parse_opt_from(p);
		}
		if (!is_kw(&p->tok, "VALUES"))
			return expected(p, "KEYS or VALUES");
		st->kind = VG_STMT_SHOW_TAG_VALUES;
		code = advance(p);
		code = code ? code : parse_opt_from(p);
		code = code ? code : expect_kw(p, "WITH");
		code = code ? code : expect_kw(p, "KEY");
		code = code ? code : expect_tok(p, VG_TOK_EQ, "'='");
		if (code)
			return code;
		if (p->tok.kind == VG_TOK_STRING) {
			if (vg_arena_str(&st->arena, p->tok.text.data, p->tok.text.len,
			                 &st->tag_key))
				return nomem(p);
			return advance(p);
		}
		return parse_name(p, "tag key", &st->tag_key);
	}
	return expected(p, "MEASUREMENTS, SERIES, TAG KEYS, TAG VALUES, FIELD KEYS, STATS, "
	                   "RETENTION or CONTINUOUS QUERIES");
}

static int parse_statement(parser_t *p)
{
	vg_statement_t *st = p->st;
	vg_token_t first = p->tok;
	int code;
	if (is_kw(&first, "SELECT")) {
		st->kind = VG_STMT_SELECT;
		code = parse_select(p, &st->select);
		if (code == 0 && p->has_into)
			return invalid(p, &p->into_tok,
			               "INTO is only allowed in CREATE CONTINUOUS QUERY");
		return code;
	}
	if (is_kw(&first, "SUBSCRIBE")) {
		st->kind = VG_STMT_SUBSCRIBE;
		code = advance(p);
		code = code ? code : parse_select(p, &st->select);
		if (code == 0 && p->has_into)
			return invalid(p, &p->into_tok,
			               "INTO is only allowed in CREATE CONTINUOUS QUERY");
		if (code == 0 && is_kw(&p->tok, "SINCE")) {
			code = advance(p);
			st->has_since = true;
			code = code ? code : parse_time(p, &st->since);
		}
		if (code == 0 && is_kw(&p->tok, "LATENESS")) {
			code = advance(p);
			code = code ? code : parse_duration(p, "duration", false, &st->lateness_ns);
		}
		return code;
	}
	if (is_kw(&first, "CREATE")) {
		st->kind = VG_STMT_CREATE_CQ;
		code = advance(p);
		code = code ? code : expect_kw(p, "CONTINUOUS");
		code = code ? code : expect_kw(p, "QUERY");
		code = code ? code : parse_name(p, "query name", &st->name);
		code = code ? code : expect_kw(p, "AS");
		vg_token_t sel_tok = p->tok;
		code = code ? code : parse_select(p, &st->select);
		if (code)
			return code;
		if (!p->has_into)
			return invalid(p, &sel_tok, "a continuous query needs INTO <measurement>");
		if (!st->select.aggregate || !st->select.interval_ns)
			return invalid(p, &sel_tok,
			               "a continuous query needs aggregate functions and GROUP BY "
			               "time(...)");
		return 0;
	}
	if (is_kw(&first, "DROP")) {
		st->kind = VG_STMT_DROP_CQ;
		code = advance(p);
		code = code ? code : expect_kw(p, "CONTINUOUS");
		code = code ? code : expect_kw(p, "QUERY");
		return code ? code : parse_name(p, "query name", &st->name);
	}
	if (is_kw(&first, "SHOW"))
		return parse_show(p);
	if (is_kw(&first, "DELETE")) {
		st->kind = VG_STMT_DELETE;
		code = advance(p);
		code = code ? code : expect_kw(p, "FROM");
		code = code ? code : parse_name(p, "measurement", &st->measurement);
		if (code == 0 && is_kw(&p->tok, "WHERE")) {
			code = advance(p);
			code = code ? code : parse_or(p, &st->where);
			code = code ? code
			            : check_cond(p, st->where, false, false, true,
			                         "DELETE supports only tag and time conditions");
		}
		return code;
	}
	if (is_kw(&first, "SET")) {
		st->kind = VG_STMT_SET_RETENTION;
		code = advance(p);
		code = code ? code : expect_kw(p, "RETENTION");
		if (code)
			return code;
		if (is_kw(&p->tok, "INF")) {
			st->retention_ns = 0;
			code = advance(p);
		} else {
			vg_token_t at = p->tok;
			code = parse_duration(p, "duration or INF", false, &st->retention_ns);
			if (code == 0 && st->retention_ns <= 0)
				return invalid(p, &at, "retention must be positive (or INF)");
		}
		if (code == 0 && is_kw(&p->tok, "ON")) {
			code = advance(p);
			code = code ? code : parse_name(p, "measurement", &st->measurement);
		}
		return code;
	}
	return expected(p, "SELECT, SUBSCRIBE, SHOW, CREATE, DROP, DELETE or SET");
}

int vg_query_parse(const char *text, size_t len, vg_statement_t **out, vg_query_error_t *err)
{
	*out = NULL;
	if (err)
		memset(err, 0, sizeof *err);
	vg_statement_t *st = vg_calloc(1, sizeof *st);
	if (!st)
		return vg_query_error_set(err, VG_ENOMEM, "out of memory");
	vg_arena_init(&st->arena);
	parser_t p = {0};
	p.st = st;
	p.err = err;
	vg_lex_init(&p.lx, text ? text : "", text ? len : 0, &st->arena, err);
	int code = advance(&p);
	code = code ? code : parse_statement(&p);
	if (code == 0 && p.tok.kind == VG_TOK_SEMI)
		code = advance(&p);
	if (code == 0 && p.tok.kind != VG_TOK_EOF)
		code = expected(&p, "end of statement");
	if (code) {
		vg_query_free(st);
		return code;
	}
	*out = st;
	return 0;
}

void vg_query_free(vg_statement_t *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nregexes; i++) {
		regfree(st->regexes[i]);
		vg_free(st->regexes[i]);
	}
	vg_free(st->regexes);
	vg_arena_release(&st->arena);
	vg_free(st);
}

/* ---- accessors ---------------------------------------------------------- */

vg_statement_kind_t vg_statement_kind(const vg_statement_t *st)
{
	return st->kind;
}

const char *vg_statement_kind_name(vg_statement_kind_t kind)
{
	switch (kind) {
	case VG_STMT_SELECT:
		return "SELECT";
	case VG_STMT_SUBSCRIBE:
		return "SUBSCRIBE";
	case VG_STMT_CREATE_CQ:
		return "CREATE CONTINUOUS QUERY";
	case VG_STMT_DROP_CQ:
		return "DROP CONTINUOUS QUERY";
	case VG_STMT_SHOW_CQS:
		return "SHOW CONTINUOUS QUERIES";
	case VG_STMT_SHOW_MEASUREMENTS:
		return "SHOW MEASUREMENTS";
	case VG_STMT_SHOW_SERIES:
		return "SHOW SERIES";
	case VG_STMT_SHOW_TAG_KEYS:
		return "SHOW TAG KEYS";
	case VG_STMT_SHOW_TAG_VALUES:
		return "SHOW TAG VALUES";
	case VG_STMT_SHOW_FIELD_KEYS:
		return "SHOW FIELD KEYS";
	case VG_STMT_SHOW_STATS:
		return "SHOW STATS";
	case VG_STMT_SHOW_RETENTION:
		return "SHOW RETENTION";
	case VG_STMT_DELETE:
		return "DELETE";
	case VG_STMT_SET_RETENTION:
		return "SET RETENTION";
	}
	return "?";
}

const vg_select_t *vg_statement_select(const vg_statement_t *st)
{
	if (st->kind == VG_STMT_SELECT || st->kind == VG_STMT_SUBSCRIBE ||
	    st->kind == VG_STMT_CREATE_CQ)
		return &st->select;
	return NULL;
}

int vg_statement_subscribe(const vg_statement_t *st, vg_subscribe_view_t *view)
{
	if (st->kind != VG_STMT_SUBSCRIBE)
		return VG_EINVAL;
	view->select = &st->select;
	view->has_since = st->has_since;
	view->since = st->since;
	view->lateness_ns = st->lateness_ns;
	return 0;
}

vg_str_t vg_statement_cq_name(const vg_statement_t *st)
{
	if (st->kind == VG_STMT_CREATE_CQ || st->kind == VG_STMT_DROP_CQ)
		return st->name;
	return (vg_str_t){"", 0};
}
