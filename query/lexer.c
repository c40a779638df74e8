/*
 * lexer.c — statement text to tokens.
 *
 * The lexer does no I/O and allocates only the unescaped text of quoted
 * identifiers, strings and regexes (in the statement's arena, so a token
 * outlives nothing it points to).  It knows no keywords: a keyword is an
 * IDENT the parser compares case-insensitively, which keeps quoted
 * identifiers ("select") usable as names.
 *
 * Positions are 1-based lines and columns; a column counts characters
 * (UTF-8 lead bytes), so a caret under the error lands where a terminal
 * shows the character.
 *
 * '/' always starts a regex: the language has no division.  A number
 * followed directly by letters is a duration (10s, 5m, 100ms), parsed by
 * vg_duration_parse so that durations mean the same on every command line.
 */
#include "query_int.h"

#include "vg_duration.h"
#include "vg_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vg_query_error_at(vg_query_error_t *err, int code, uint32_t line, uint32_t column,
                      const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->line = line;
	err->column = column;
	int n = snprintf(err->message, sizeof err->message, "line %u, column %u: ", line, column);
	if (n < 0 || (size_t)n >= sizeof err->message)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
	va_end(ap);
	return code;
}

int vg_query_error_set(vg_query_error_t *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->line = 0;
	err->column = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return code;
}

void vg_lex_init(vg_lexer_t *lx, const char *text, size_t len, vg_arena_t *arena,
                 vg_query_error_t *err)
{
	lx->pos = text;
	lx->end = text + len;
	lx->line = 1;
	lx->column = 1;
	lx->arena = arena;
	lx->err = err;
}

/* Moves past one byte, keeping line and column. */
static void step(vg_lexer_t *lx)
{
	unsigned char c = (unsigned char)*lx->pos++;
	if (c == '\n') {
		lx->line++;
		lx->column = 1;
	} else if ((c & 0xC0) != 0x80) {
		lx->column++;
	}
}

static bool is_ident_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident_char(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '-';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_letter(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * Reads a quoted token (quote is ' or "; for '/' a regex) into the arena,
 * unescaping.  Strings and identifiers accept \\ \' \" \n \t \r; a regex
 * turns \/ into / and keeps every other backslash pair as written.
 */
static int lex_quoted(vg_lexer_t *lx, vg_token_t *tok, char quote)
{
	const char *what = quote == '\'' ? "string" : quote == '"' ? "quoted identifier" : "regex";
	step(lx); /* opening quote */
	vg_buf_t buf = VG_BUF_INIT;
	int code = 0;
	for (;;) {
		if (lx->pos >= lx->end || *lx->pos == '\n') {
			code = vg_query_error_at(lx->err, VG_ESYNTAX, tok->line, tok->column,
			                         "unterminated %s", what);
			break;
		}
		char c = *lx->pos;
		if (c == quote) {
			step(lx);
			break;
		}
		if (c == '\\') {
			uint32_t eline = lx->line, ecol = lx->column;
			step(lx);
			if (lx->pos >= lx->end) {
				code = vg_query_error_at(lx->err, VG_ESYNTAX, tok->line,
				                         tok->column, "unterminated %s", what);
				break;
			}
			char e = *lx->pos;
			char out;
			if (quote == '/') {
				if (e == '/') {
					out = '/';
				} else {
					code = vg_buf_putc(&buf, '\\');
					out = e;
				}
			} else if (e == '\\' || e == '\'' || e == '"') {
				out = e;
			} else if (e == 'n') {
				out = '\n';
			} else if (e == 't') {
				out = '\t';
			} else if (e == 'r') {
				out = '\r';
			} else {
				code = vg_query_error_at(lx->err, VG_ESYNTAX, eline, ecol,
				                         "invalid escape '\\%c' in %s", e, what);
				break;
			}
			if (code == 0)
				code = vg_buf_putc(&buf, (uint8_t)out);
			if (code)
				break;
			step(lx);
			continue;
		}
		code = vg_buf_putc(&buf, (uint8_t)c);
		if (code)
			break;
		step(lx);
	}
	if (code == 0)
		code = vg_arena_str(lx->arena, buf.len ? (const char *)buf.data : "", buf.len,
		                    &tok->text);
	vg_buf_release(&buf);
	if (code == VG_ENOMEM)
		vg_query_error_set(lx->err, code, "out of memory");
	if (code == 0 && quote == '"' && tok->text.len == 0)
		code = vg_query_error_at(lx->err, VG_ESYNTAX, tok->line, tok->column,
		                         "empty quoted identifier");
	return code;
}

static int lex_number(vg_lexer_t *lx, vg_token_t *tok)
{
	const char *start = lx->pos;
	uint64_t v = 0;
	bool overflow = false;
	bool is_float = false;
	while (lx->pos < lx->end && is_digit(*lx->pos)) {
		unsigned d = (unsigned)(*lx->pos - '0');
		if (v > (UINT64_C(9223372036854775807) - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
		step(lx);
	}
	if (lx->pos < lx->end && *lx->pos == '.') {
		is_float = true;
		step(lx);
		while (lx->pos < lx->end && is_digit(*lx->pos))
			step(lx);
	}
	if (lx->pos < lx->end && (*lx->pos == 'e' || *lx->pos == 'E')) {
		const char *p = lx->pos + 1;
		if (p < lx->end && (*p == '+' || *p == '-'))
			p++;
		if (p < lx->end && is_digit(*p)) {
			is_float = true;
			while (lx->pos < p)
				step(lx);
			while (lx->pos < lx->end && is_digit(*lx->pos))
				step(lx);
		}
	}
	if (!is_float && lx->pos < lx->end && is_letter(*lx->pos)) {
		while (lx->pos < lx->end && is_letter(*lx->pos))
			step(lx);
		size_t len = (size_t)(lx->pos - start);
		int code = vg_duration_parse(start, len, &tok->ival);
		if (code == VG_ELIMIT)
			return vg_query_error_at(lx->err, VG_EINVAL, tok->line, tok->column,
			                         "duration '%.*s' is out of range", (int)len,
			                         start);
		if (code)
			return vg_query_error_at(
			    lx->err, VG_ESYNTAX, tok->line, tok->column,
			    "invalid duration '%.*s' (units: ns, us, ms, s, m, h, d, w)",
			    (int)(len > 40 ? 40 : len), start);
		tok->kind = VG_TOK_DURATION;
	} else {
		char tmp[80];
		size_t len = (size_t)(lx->pos - start);
		if (len >= sizeof tmp)
			return vg_query_error_at(lx->err, VG_ESYNTAX, tok->line, tok->column,
			                         "number too long");
		memcpy(tmp, start, len);
		tmp[len] = 0;
		tok->fval = strtod(tmp, NULL);
		tok->kind = is_float ? VG_TOK_FLOAT : VG_TOK_INT;
		tok->ival = (int64_t)v;
		tok->overflow = overflow;
	}
	if (lx->pos < lx->end && is_ident_char(*lx->pos) && *lx->pos != '-')
		return vg_query_error_at(
		    lx->err, VG_ESYNTAX, tok->line, tok->column, "invalid number '%.*s%c'",
		    (int)((size_t)(lx->pos - start) > 40 ? 40 : lx->pos - start), start, *lx->pos);
	return 0;
}

/* Operators of one or two characters. */
static bool lex_operator(vg_lexer_t *lx, vg_token_t *tok)
{
	char c = *lx->pos;
	char d = lx->pos + 1 < lx->end ? lx->pos[1] : 0;
	vg_tok_kind_t kind;
	int len = 1;
	switch (c) {
	case '=':
		kind = d == '~' ? (len = 2, VG_TOK_EQRE) : VG_TOK_EQ;
		break;
	case '!':
		if (d == '=')
			kind = VG_TOK_NE;
		else if (d == '~')
			kind = VG_TOK_NERE;
		else
			return false;
		len = 2;
		break;
	case '<':
		if (d == '=')
			kind = (len = 2, VG_TOK_LE);
		else if (d == '>')
			kind = (len = 2, VG_TOK_NE);
		else
			kind = VG_TOK_LT;
		break;
	case '>':
		kind = d == '=' ? (len = 2, VG_TOK_GE) : VG_TOK_GT;
		break;
	case '+':
		kind = VG_TOK_PLUS;
		break;
	case '-':
		kind = VG_TOK_MINUS;
		break;
	case '*':
		kind = VG_TOK_STAR;
		break;
	case ',':
		kind = VG_TOK_COMMA;
		break;
	case ';':
		kind = VG_TOK_SEMI;
		break;
	case '(':
		kind = VG_TOK_LPAREN;
		break;
	case ')':
		kind = VG_TOK_RPAREN;
		break;
	default:
		return false;
	}
	tok->kind = kind;
	while (len-- > 0)
		step(lx);
	return true;
}

int vg_lex_next(vg_lexer_t *lx, vg_token_t *tok)
{
	while (lx->pos < lx->end &&
	       (*lx->pos == ' ' || *lx->pos == '\t' || *lx->pos == '\n' || *lx->pos == '\r'))
		step(lx);
	memset(tok, 0, sizeof *tok);
	tok->raw = lx->pos;
	tok->line = lx->line;
	tok->column = lx->column;
	int code = 0;
	if (lx->pos >= lx->end) {
		tok->kind = VG_TOK_EOF;
	} else if (is_ident_start(*lx->pos)) {
		while (lx->pos < lx->end && is_ident_char(*lx->pos))
			step(lx);
		tok->kind = VG_TOK_IDENT;
		tok->text = (vg_str_t){tok->raw, (size_t)(lx->pos - tok->raw)};
	} else if (*lx->pos == '"') {
		tok->kind = VG_TOK_QIDENT;
		code = lex_quoted(lx, tok, '"');
	} else if (*lx->pos == '\'') {
		tok->kind = VG_TOK_STRING;
		code = lex_quoted(lx, tok, '\'');
	} else if (*lx->pos == '/') {
		tok->kind = VG_TOK_REGEX;
		code = lex_quoted(lx, tok, '/');
	} else if (is_digit(*lx->pos) ||
	           (*lx->pos == '.' && lx->pos + 1 < lx->end && is_digit(lx->pos[1]))) {
		code = lex_number(lx, tok);
	} else if (!lex_operator(lx, tok)) {
		/* Show the whole UTF-8 character. */
		size_t n = 1;
		while (lx->pos + n < lx->end && n < 4 && ((unsigned char)lx->pos[n] & 0xC0) == 0x80)
			n++;
		return vg_query_error_at(lx->err, VG_ESYNTAX, tok->line, tok->column,
		                         "unexpected character '%.*s'", (int)n, lx->pos);
	}
	tok->raw_len = (size_t)(lx->pos - tok->raw);
	return code;
}
