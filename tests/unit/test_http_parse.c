/*
 * http_parse: request and response heads and chunked framing, each case
 * fed whole and one byte at a time, always from an exact-size heap copy so
 * that AddressSanitizer sees any read past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/http_parse.h"
#include "tests/unit/test.h"

#define OK	1	/* want: a head whose length is len - tail */

/* An exact-size heap copy of the first n bytes. */
static uint8_t *
dup_exact(const void *p, size_t n)
{
	uint8_t *b = malloc(n > 0 ? n : 1);

	if (b == NULL)
		abort();
	if (n > 0)
		memcpy(b, p, n);
	return b;
}

static int
slice_is(struct http_slice s, const char *want)
{
	if (want == NULL)
		return s.p == NULL && s.len == 0;
	return s.p != NULL && s.len == strlen(want) &&
	    memcmp(s.p, want, s.len) == 0;
}

static int
slice_inside(struct http_slice s, const uint8_t *buf, size_t len)
{
	const char *b = (const char *)buf;

	if (s.p == NULL)
		return s.len == 0;
	return s.p >= b && s.p + s.len <= b + len;
}

struct req_case {
	const char	*name;		/* the behaviour */
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	int		 want;		/* OK or an error */
	size_t		 tail;		/* bytes after the head */
	const char	*method, *target, *scheme, *authority, *path;
	const char	*host;		/* NULL: no Host header */
	enum http_target_form form;
	int		 minor;
	enum http_body	 body;
	uint64_t	 cl;
	int		 ka, expect;
	size_t		 nh;
};

#define H11	"HTTP/1.1\r\nHost: h\r\n"

static const struct req_case req_cases[] = {
	/* Accepted heads. */
	{ "origin_form_get_is_parsed", "GET /a/b?c=d HTTP/1.1\r\nHost: "
	    "example.com\r\nAccept: */*\r\n\r\n", .want = OK, .method = "GET",
	    .target = "/a/b?c=d", .path = "/a/b?c=d", .host = "example.com",
	    .minor = 1, .ka = 1, .nh = 2 },
	{ "absolute_form_splits_scheme_authority_path",
	    "GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: example.com:"
	    "8080\r\n\r\n", .want = OK, .method = "GET",
	    .target = "http://example.com:8080/a?b=c", .scheme = "http",
	    .authority = "example.com:8080", .path = "/a?b=c",
	    .host = "example.com:8080", .form = HTTP_FORM_ABSOLUTE,
	    .minor = 1, .ka = 1, .nh = 1 },
	{ "absolute_form_without_path_gets_slash",
	    "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
	    .want = OK, .scheme = "http", .authority = "example.com",
	    .path = "/", .host = "example.com", .form = HTTP_FORM_ABSOLUTE,
	    .minor = 1, .ka = 1, .nh = 1 },
	{ "absolute_form_any_scheme_is_left_to_caller",
	    "GET https://[::1]:443/x HTTP/1.1\r\nHost: [::1]\r\n\r\n",
	    .want = OK, .scheme = "https", .authority = "[::1]:443",
	    .path = "/x", .host = "[::1]", .form = HTTP_FORM_ABSOLUTE,
	    .minor = 1, .ka = 1, .nh = 1 },
	{ "connect_authority_form_is_parsed",
	    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	    .want = OK, .method = "CONNECT", .target = "example.com:443",
	    .authority = "example.com:443", .host = "example.com:443",
	    .form = HTTP_FORM_AUTHORITY, .minor = 1, .ka = 1, .nh = 1 },
	{ "connect_to_bracketed_ipv6_is_parsed",
	    "CONNECT [2001:db8::1]:8443 " H11 "\r\n", .want = OK,
	    .authority = "[2001:db8::1]:8443", .host = "h",
	    .form = HTTP_FORM_AUTHORITY, .minor = 1, .ka = 1, .nh = 1 },
	{ "options_asterisk_is_parsed", "OPTIONS * " H11 "\r\n", .want = OK,
	    .method = "OPTIONS", .target = "*", .host = "h",
	    .form = HTTP_FORM_ASTERISK, .minor = 1, .ka = 1, .nh = 1 },
	{ "options_origin_form_is_parsed", "OPTIONS /x " H11 "\r\n",
	    .want = OK, .path = "/x", .host = "h", .minor = 1, .ka = 1,
	    .nh = 1 },
	{ "extension_method_is_a_token", "PURGE /x " H11 "\r\n", .want = OK,
	    .method = "PURGE", .host = "h", .minor = 1, .ka = 1, .nh = 1 },
	{ "http10_without_host_is_accepted_and_closes",
	    "GET / HTTP/1.0\r\n\r\n", .want = OK, .path = "/", .minor = 0,
	    .ka = 0, .nh = 0 },
	{ "http10_keep_alive_token_keeps_alive",
	    "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", .want = OK,
	    .minor = 0, .ka = 1, .nh = 1 },
	{ "http11_connection_close_closes",
	    "GET / " H11 "Connection: close\r\n\r\n", .want = OK, .host = "h",
	    .minor = 1, .ka = 0, .nh = 2 },
	{ "connection_tokens_are_a_case_insensitive_list",
	    "GET / " H11 "Connection: Upgrade, CLOSE ,foo\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .ka = 0, .nh = 2 },
	{ "close_wins_over_keep_alive",
	    "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n"
	    "\r\n", .want = OK, .minor = 0, .ka = 0, .nh = 2 },
	{ "content_length_gives_length_body",
	    "POST /u " H11 "Content-Length: 42\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .body = HTTP_BODY_LENGTH, .cl = 42,
	    .ka = 1, .nh = 2 },
	{ "content_length_zero_is_a_length_body",
	    "POST /u " H11 "content-length:0\r\n\r\n", .want = OK, .host = "h",
	    .minor = 1, .body = HTTP_BODY_LENGTH, .cl = 0, .ka = 1, .nh = 2 },
	{ "content_length_leading_zeros_are_decimal",
	    "POST /u " H11 "Content-Length: 007\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .body = HTTP_BODY_LENGTH, .cl = 7,
	    .ka = 1, .nh = 2 },
	{ "content_length_at_2_pow_62_is_accepted",
	    "POST /u " H11 "Content-Length: 4611686018427387904\r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .body = HTTP_BODY_LENGTH,
	    .cl = UINT64_C(4611686018427387904), .ka = 1, .nh = 2 },
	{ "transfer_encoding_chunked_gives_chunked_body",
	    "POST /u " H11 "Transfer-Encoding: chunked\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .body = HTTP_BODY_CHUNKED, .ka = 1,
	    .nh = 2 },
	{ "transfer_encoding_is_case_insensitive",
	    "POST /u " H11 "transfer-encoding:\tCHUNKED\t\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .body = HTTP_BODY_CHUNKED, .ka = 1,
	    .nh = 2 },
	{ "transfer_encoding_list_ending_in_chunked_is_chunked",
	    "POST /u " H11 "Transfer-Encoding: gzip;q=1, chunked\r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .body = HTTP_BODY_CHUNKED,
	    .ka = 1, .nh = 2 },
	{ "transfer_encoding_across_lines_ending_in_chunked_is_chunked",
	    "POST /u " H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n", .want = OK, .host = "h", .minor = 1,
	    .body = HTTP_BODY_CHUNKED, .ka = 1, .nh = 3 },
	{ "transfer_encoding_empty_list_elements_are_ignored",
	    "POST /u " H11 "Transfer-Encoding: , chunked ,\r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .body = HTTP_BODY_CHUNKED,
	    .ka = 1, .nh = 2 },
	{ "expect_100_continue_is_flagged",
	    "PUT /u " H11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .body = HTTP_BODY_LENGTH,
	    .cl = 1, .ka = 1, .expect = 1, .nh = 3 },
	{ "value_ows_is_trimmed", "GET / HTTP/1.1\r\nHost: \t h \t\r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .ka = 1, .nh = 1 },
	{ "value_obs_text_and_inner_space_are_kept",
	    "GET / " H11 "X-A: caf\xc3\xa9 \"q:x\"\t y\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .ka = 1, .nh = 2 },
	{ "empty_value_is_accepted", "GET / " H11 "X-Empty:\r\nX-B:   \r\n\r\n",
	    .want = OK, .host = "h", .minor = 1, .ka = 1, .nh = 3 },
	{ "empty_host_is_left_to_caller", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
	    .want = OK, .host = "", .minor = 1, .ka = 1, .nh = 1 },
	{ "every_tchar_is_allowed_in_a_name",
	    "GET / " H11 "!#$%&'*+-.^_`|~0aZ: v\r\n\r\n", .want = OK,
	    .host = "h", .minor = 1, .ka = 1, .nh = 2 },
	{ "one_leading_empty_line_is_skipped_and_counted",
	    "\r\nGET / " H11 "\r\n", .want = OK, .method = "GET", .host = "h",
	    .minor = 1, .ka = 1, .nh = 1 },
	{ "four_leading_empty_lines_are_skipped",
	    "\r\n\r\n\r\n\r\nGET / " H11 "\r\n", .want = OK, .host = "h",
	    .minor = 1, .ka = 1, .nh = 1 },
	{ "body_bytes_after_the_head_are_not_consumed",
	    "POST / " H11 "Content-Length: 5\r\n\r\nhello", .want = OK,
	    .tail = 5, .host = "h", .minor = 1, .body = HTTP_BODY_LENGTH,
	    .cl = 5, .ka = 1, .nh = 2 },
	{ "pipelined_request_is_not_consumed",
	    "GET /1 " H11 "\r\nGET /2 " H11 "\r\n", .want = OK, .tail = 28,
	    .target = "/1", .host = "h", .minor = 1, .ka = 1, .nh = 1 },
	{ "content_length_underscore_is_just_another_name",
	    "POST / " H11 "Content_Length: 5\r\n\r\n", .want = OK, .host = "h",
	    .minor = 1, .body = HTTP_BODY_NONE, .ka = 1, .nh = 2 },

	/* Syntax. */
	{ "bare_lf_after_request_line_is_syntax",
	    "GET / HTTP/1.1\nHost: h\r\n\r\n", .want = HTTP_E_SYNTAX },
	{ "bare_lf_after_header_is_syntax", "GET / HTTP/1.1\r\nHost: h\n\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_lf_ending_head_is_syntax", "GET / " H11 "\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_cr_in_value_is_syntax", "GET / " H11 "X: a\rb\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "cr_cr_lf_is_syntax", "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "cr_then_garbage_ending_head_is_syntax", "GET / " H11 "\rX",
	    .want = HTTP_E_SYNTAX },
	{ "nul_in_value_is_syntax", "GET / " H11 "X: a\0b\r\n\r\n", 35,
	    .want = HTTP_E_SYNTAX },
	{ "nul_in_method_is_syntax", "G\0T / " H11 "\r\n", 27,
	    .want = HTTP_E_SYNTAX },
	{ "ctl_in_value_is_syntax", "GET / " H11 "X: a\x01\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "del_in_value_is_syntax", "GET / " H11 "X: a\x7f\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "space_before_colon_is_syntax",
	    "POST / " H11 "Transfer-Encoding : chunked\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "tab_before_colon_is_syntax", "GET / " H11 "X\t: y\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "obs_fold_is_syntax",
	    "POST / " H11 "Transfer-Encoding: gzip,\r\n chunked\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "whitespace_before_first_header_is_syntax",
	    "GET / HTTP/1.1\r\n Host: h\r\n\r\n", .want = HTTP_E_SYNTAX },
	{ "empty_header_name_is_syntax", "GET / " H11 ": v\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "header_without_colon_is_syntax", "GET / " H11 "Foo\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "non_token_in_name_is_syntax", "GET / " H11 "X(Y): z\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "double_space_after_method_is_syntax", "GET  / " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "double_space_before_version_is_syntax", "GET /  " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "space_before_method_is_syntax", " GET / " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "tab_as_separator_is_syntax", "GET\t/ " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "space_after_version_is_syntax", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "lowercase_http_name_is_syntax", "GET / http/1.1\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "three_digit_version_is_syntax", "GET / HTTP/1.10\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "two_digit_major_is_syntax", "GET / HTTP/11.1\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "http09_request_line_is_syntax", "GET /\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "fragment_in_target_is_syntax", "GET /a#b " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "non_ascii_in_target_is_syntax", "GET /caf\xc3\xa9 " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "ctl_in_target_is_syntax", "GET /a\x01 " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "slash_in_method_is_syntax", "GE/T / " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "five_leading_empty_lines_are_syntax",
	    "\r\n\r\n\r\n\r\n\r\nGET / " H11 "\r\n", .want = HTTP_E_SYNTAX },
	{ "leading_bare_lf_is_syntax", "\nGET / " H11 "\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "tls_client_hello_is_syntax", "\x16\x03\x01\x02\x00\x01\x00\x01",
	    .want = HTTP_E_SYNTAX },

	/* Version. */
	{ "http2_preface_is_version", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	    .want = HTTP_E_VERSION },
	{ "http12_is_version", "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_VERSION },
	{ "http09_version_is_version", "GET / HTTP/0.9\r\n\r\n",
	    .want = HTTP_E_VERSION },
	{ "http3_is_version", "GET / HTTP/3.0\r\nHost: h\r\n\r\n",
	    .want = HTTP_E_VERSION },

	/* Target. */
	{ "connect_origin_form_is_target", "CONNECT /x " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "connect_absolute_form_is_target",
	    "CONNECT http://h:80/ " H11 "\r\n", .want = HTTP_E_TARGET },
	{ "connect_without_port_is_target", "CONNECT example.com " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "connect_empty_port_is_target", "CONNECT example.com: " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "connect_six_digit_port_is_target",
	    "CONNECT example.com:100443 " H11 "\r\n", .want = HTTP_E_TARGET },
	{ "connect_empty_host_is_target", "CONNECT :443 " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "connect_userinfo_is_target", "CONNECT u@example.com:443 " H11
	    "\r\n", .want = HTTP_E_TARGET },
	{ "connect_bracketed_without_port_is_target",
	    "CONNECT [::1] " H11 "\r\n", .want = HTTP_E_TARGET },
	{ "connect_bad_ip_literal_is_target", "CONNECT [zz]:443 " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "connect_asterisk_is_target", "CONNECT * " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "asterisk_for_get_is_target", "GET * " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "authority_form_for_get_is_target", "GET example.com:80 " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "absolute_form_userinfo_is_target",
	    "GET http://allowed.com@evil.com/ " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "absolute_form_single_slash_is_target", "GET http:/x " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "absolute_form_empty_authority_is_target",
	    "GET http:///x " H11 "\r\n", .want = HTTP_E_TARGET },
	{ "absolute_form_query_without_path_is_target",
	    "GET http://h?q=1 " H11 "\r\n", .want = HTTP_E_TARGET },
	{ "scheme_starting_with_digit_is_target", "GET 1http://h/ " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "unclosed_ip_literal_is_target", "GET http://[::1/ " H11 "\r\n",
	    .want = HTTP_E_TARGET },
	{ "backslash_in_authority_is_target",
	    "GET http://evil.com\\@good.com/ " H11 "\r\n",
	    .want = HTTP_E_TARGET },

	/* Framing. */
	{ "duplicate_identical_content_length_is_framing",
	    "POST / " H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "duplicate_different_content_length_is_framing",
	    "POST / " H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_list_is_framing",
	    "POST / " H11 "Content-Length: 5, 5\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_plus_sign_is_framing",
	    "POST / " H11 "Content-Length: +5\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_negative_is_framing",
	    "POST / " H11 "Content-Length: -1\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_inner_space_is_framing",
	    "POST / " H11 "Content-Length: 1 2\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_empty_is_framing",
	    "POST / " H11 "Content-Length: \r\n\r\n", .want = HTTP_E_FRAMING },
	{ "content_length_hex_is_framing",
	    "POST / " H11 "Content-Length: 0x10\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_over_2_pow_62_is_framing",
	    "POST / " H11 "Content-Length: 4611686018427387905\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_over_uint64_is_framing",
	    "POST / " H11 "Content-Length: 99999999999999999999999\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "content_length_then_transfer_encoding_is_framing",
	    "POST / " H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n", .want = HTTP_E_FRAMING },
	{ "transfer_encoding_then_content_length_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
	    "\r\n", .want = HTTP_E_FRAMING },
	{ "chunked_not_last_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked, gzip\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "chunked_not_last_across_lines_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: "
	    "gzip\r\n\r\n", .want = HTTP_E_FRAMING },
	{ "chunked_twice_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n", .want = HTTP_E_FRAMING },
	{ "request_coding_not_ending_in_chunked_is_framing",
	    "POST / " H11 "Transfer-Encoding: gzip\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "empty_transfer_encoding_is_framing",
	    "POST / " H11 "Transfer-Encoding:\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "chunked_with_parameter_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked;x=1\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "quoted_chunked_is_framing",
	    "POST / " H11 "Transfer-Encoding: \"chunked\"\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "xchunked_is_not_chunked",
	    "POST / " H11 "Transfer-Encoding: xchunked\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "chunked_with_trailing_junk_is_framing",
	    "POST / " H11 "Transfer-Encoding: chunked x\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "transfer_encoding_in_http10_is_framing",
	    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	    .want = HTTP_E_FRAMING },

	/* Host. */
	{ "http11_without_host_is_host", "GET / HTTP/1.1\r\nX: y\r\n\r\n",
	    .want = HTTP_E_HOST },
	{ "duplicate_host_is_host", "GET / " H11 "Host: h\r\n\r\n",
	    .want = HTTP_E_HOST },
	{ "duplicate_host_case_insensitive_is_host",
	    "GET / " H11 "hOsT: evil\r\n\r\n", .want = HTTP_E_HOST },
	{ "duplicate_host_in_http10_is_host",
	    "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
	    .want = HTTP_E_HOST },
};

static void
check_req_fields(const struct req_case *c, const uint8_t *buf, size_t len,
    const struct http_request *r)
{
	CHECK(c->method == NULL || slice_is(r->method, c->method),
	    "%s: method", c->name);
	CHECK(c->target == NULL || slice_is(r->target, c->target),
	    "%s: target", c->name);
	CHECK(c->scheme == NULL || slice_is(r->scheme, c->scheme),
	    "%s: scheme", c->name);
	CHECK(c->authority == NULL || slice_is(r->authority, c->authority),
	    "%s: authority", c->name);
	CHECK(c->path == NULL || slice_is(r->path, c->path),
	    "%s: path", c->name);
	CHECK(slice_is(r->host, c->host), "%s: host", c->name);
	CHECK(r->form == c->form, "%s: form %d", c->name, (int)r->form);
	CHECK(r->minor == c->minor, "%s: minor %d", c->name, r->minor);
	CHECK(r->body == c->body, "%s: body %d", c->name, (int)r->body);
	CHECK(r->content_length == c->cl, "%s: content_length", c->name);
	CHECK(r->keep_alive == (c->ka != 0), "%s: keep_alive", c->name);
	CHECK(r->expect_continue == (c->expect != 0), "%s: expect",
	    c->name);
	CHECK(r->nheaders == c->nh, "%s: nheaders %zu", c->name,
	    r->nheaders);
	CHECK(slice_inside(r->method, buf, len) &&
	    slice_inside(r->target, buf, len) &&
	    slice_inside(r->scheme, buf, len) &&
	    slice_inside(r->authority, buf, len) &&
	    (slice_inside(r->path, buf, len) || slice_is(r->path, "/")) &&
	    slice_inside(r->host, buf, len), "%s: slices inside", c->name);
	for (size_t i = 0; i < r->nheaders; i++)
		CHECK(slice_inside(r->headers[i].name, buf, len) &&
		    slice_inside(r->headers[i].value, buf, len),
		    "%s: header %zu inside", c->name, i);
}

static void
request_cases_whole_and_byte_by_byte(void)
{
	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case	*c = &req_cases[i];
		size_t			 len = c->len ? c->len : strlen(c->in);
		size_t			 head = len - c->tail;
		struct http_request	 req;
		uint8_t			*buf;
		int			 r;

		buf = dup_exact(c->in, len);
		r = http_parse_request(buf, len, &req);
		if (c->want == OK) {
			CHECK(r == (int)head, "%s: got %d want %zu", c->name,
			    r, head);
			if (r > 0)
				check_req_fields(c, buf, len, &req);
		} else
			CHECK(r == c->want, "%s: got %d want %d", c->name, r,
			    c->want);
		free(buf);

		/* Every prefix: need more, or the same error. */
		for (size_t k = 0; k < len; k++) {
			buf = dup_exact(c->in, k);
			r = http_parse_request(buf, k, &req);
			if (c->want == OK && k < head)
				CHECK(r == HTTP_NEED_MORE,
				    "%s: prefix %zu gave %d", c->name, k, r);
			else if (c->want == OK)
				CHECK(r == (int)head,
				    "%s: prefix %zu gave %d", c->name, k, r);
			else
				CHECK(r == HTTP_NEED_MORE || r == c->want,
				    "%s: prefix %zu gave %d", c->name, k, r);
			free(buf);
		}
	}
}

struct resp_case {
	const char	*name;
	const char	*in;
	int		 want;
	bool		 head, connect;	/* the request's method */
	int		 status;
	const char	*reason;
	int		 minor;
	enum http_body	 body;
	uint64_t	 cl;
	int		 ka;
	size_t		 nh;
};

static const struct resp_case resp_cases[] = {
	{ "content_length_response_has_length_body",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .want = OK,
	    .status = 200,
	    .reason = "OK", .minor = 1, .body = HTTP_BODY_LENGTH, .cl = 5,
	    .ka = 1, .nh = 1 },
	{ "unframed_response_reads_until_close",
	    "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", .want = OK, .status = 200,
	    .reason = "OK", .minor = 1, .body = HTTP_BODY_CLOSE, .ka = 0,
	    .nh = 1 },
	{ "missing_space_before_empty_reason_is_tolerated",
	    "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .want = OK,
	    .status = 200,
	    .reason = "", .minor = 1, .body = HTTP_BODY_LENGTH, .ka = 1,
	    .nh = 1 },
	{ "empty_reason_after_space_is_accepted",
	    "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", .want = OK,
	    .status = 404,
	    .reason = "", .minor = 1, .body = HTTP_BODY_LENGTH, .ka = 1,
	    .nh = 1 },
	{ "reason_keeps_spaces_tabs_and_obs_text",
	    "HTTP/1.1 404 Not\tFound \xe9 \r\nContent-Length: 0\r\n\r\n",
	    .want = OK,
	    .status = 404, .reason = "Not\tFound \xe9 ", .minor = 1,
	    .body = HTTP_BODY_LENGTH, .ka = 1, .nh = 1 },
	{ "no_content_has_no_body", "HTTP/1.1 204 No Content\r\n\r\n",
	    .want = OK,
	    .status = 204, .reason = "No Content", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1 },
	{ "not_modified_has_no_body_despite_length",
	    "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
	    .want = OK,
	    .status = 304, .reason = "Not Modified", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1, .nh = 1 },
	{ "continue_has_no_body", "HTTP/1.1 100 Continue\r\n\r\n", .want = OK,
	    .status = 100, .reason = "Continue", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1 },
	{ "switching_protocols_has_no_body",
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n\r\n", .want = OK, .status = 101,
	    .reason = "Switching Protocols", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1, .nh = 2 },
	{ "head_response_has_no_body_despite_length",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", .want = OK,
	    .head = true, .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1, .nh = 1 },
	{ "head_response_has_no_body_despite_chunked",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .want = OK,
	    .head = true, .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1, .nh = 1 },
	{ "connect_2xx_has_no_body",
	    "HTTP/1.1 200 Connection established\r\n\r\n", .want = OK,
	    .connect = true, .status = 200,
	    .reason = "Connection established", .minor = 1,
	    .body = HTTP_BODY_NONE, .ka = 1 },
	{ "connect_refusal_has_a_body",
	    "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", .want = OK,
	    .connect = true, .status = 407, .reason = "Proxy Auth",
	    .minor = 1, .body = HTTP_BODY_LENGTH, .cl = 3, .ka = 1, .nh = 1 },
	{ "chunked_response_is_chunked",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .want = OK,
	    .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_CHUNKED, .ka = 1, .nh = 1 },
	{ "gzip_then_chunked_response_is_chunked",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    .want = OK,
	    .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_CHUNKED, .ka = 1, .nh = 1 },
	{ "coding_without_chunked_reads_until_close",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .want = OK,
	    .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_CLOSE, .ka = 0, .nh = 1 },
	{ "http10_response_closes_by_default",
	    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", .want = OK,
	    .status = 200,
	    .reason = "OK", .minor = 0, .body = HTTP_BODY_LENGTH, .cl = 2,
	    .ka = 0, .nh = 1 },
	{ "http10_keep_alive_response_keeps_alive",
	    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
	    "\r\n", .want = OK, .status = 200, .reason = "OK", .minor = 0,
	    .body = HTTP_BODY_LENGTH, .cl = 2, .ka = 1, .nh = 2 },
	{ "connection_close_response_closes",
	    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
	    .want = OK, .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_LENGTH, .cl = 2, .ka = 0, .nh = 2 },
	{ "status_999_is_accepted", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n"
	    "\r\n", .want = OK, .status = 999, .reason = "Odd", .minor = 1,
	    .body = HTTP_BODY_LENGTH, .ka = 1, .nh = 1 },
	{ "response_host_headers_are_not_checked",
	    "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n"
	    "\r\n", .want = OK, .status = 200, .reason = "OK", .minor = 1,
	    .body = HTTP_BODY_LENGTH, .ka = 1, .nh = 3 },

	{ "reason_glued_to_status_is_syntax", "HTTP/1.1 200OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "two_digit_status_is_syntax", "HTTP/1.1 20 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "four_digit_status_is_syntax", "HTTP/1.1 2000 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "status_below_100_is_syntax", "HTTP/1.1 099 X\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "status_with_letters_is_syntax", "HTTP/1.1 2x0 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "version_without_minor_is_syntax", "HTTP/2 200\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "lowercase_http_is_syntax", "http/1.1 200 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "icy_status_line_is_syntax", "ICY 200 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "two_spaces_before_status_is_syntax", "HTTP/1.1  200 OK\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_lf_status_line_is_syntax", "HTTP/1.1 200 OK\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "ctl_in_reason_is_syntax", "HTTP/1.1 200 O\x01K\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "response_obs_fold_is_syntax",
	    "HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n", .want = HTTP_E_SYNTAX },
	{ "http2_status_line_is_version", "HTTP/2.0 200 OK\r\n\r\n",
	    .want = HTTP_E_VERSION },
	{ "duplicate_response_length_is_framing",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "response_length_with_chunked_is_framing",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n", .want = HTTP_E_FRAMING },
	{ "response_chunked_not_last_is_framing",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "http10_response_transfer_encoding_is_framing",
	    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "invalid_length_is_framing_even_without_body",
	    "HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n",
	    .want = HTTP_E_FRAMING },
	{ "invalid_length_is_framing_for_head",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
	    .want = HTTP_E_FRAMING, .head = true },
};

static void
response_cases_whole_and_byte_by_byte(void)
{
	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]);
	    i++) {
		const struct resp_case	*c = &resp_cases[i];
		size_t			 len = strlen(c->in);
		struct http_response	 resp;
		uint8_t			*buf;
		int			 r;

		buf = dup_exact(c->in, len);
		r = http_parse_response(buf, len, c->head, c->connect, &resp);
		if (c->want == OK) {
			CHECK(r == (int)len, "%s: got %d", c->name, r);
			CHECK(resp.status == c->status, "%s: status %d",
			    c->name, resp.status);
			CHECK(slice_is(resp.reason, c->reason) &&
			    slice_inside(resp.reason, buf, len),
			    "%s: reason", c->name);
			CHECK(resp.minor == c->minor, "%s: minor", c->name);
			CHECK(resp.body == c->body, "%s: body %d", c->name,
			    (int)resp.body);
			CHECK(resp.content_length == c->cl, "%s: length",
			    c->name);
			CHECK(resp.keep_alive == (c->ka != 0),
			    "%s: keep_alive", c->name);
			CHECK(resp.nheaders == c->nh, "%s: nheaders",
			    c->name);
		} else
			CHECK(r == c->want, "%s: got %d want %d", c->name, r,
			    c->want);
		free(buf);

		for (size_t k = 0; k < len; k++) {
			buf = dup_exact(c->in, k);
			r = http_parse_response(buf, k, c->head, c->connect,
			    &resp);
			CHECK(r == HTTP_NEED_MORE ||
			    (c->want != OK && r == c->want),
			    "%s: prefix %zu gave %d", c->name, k, r);
			free(buf);
		}
	}
}

/* A head of n headers "X: y", padded so that it is exactly size bytes. */
static uint8_t *
big_head(size_t nheaders, size_t size, size_t *len)
{
	static const char	 start[] = "GET / HTTP/1.1\r\nHost: h\r\n";
	uint8_t			*b = malloc(size);
	size_t			 o = 0;

	if (b == NULL || size < sizeof(start) + 2 + nheaders * 6 + 6)
		abort();
	memcpy(b, start, sizeof(start) - 1);
	o = sizeof(start) - 1;
	for (size_t i = 0; i < nheaders; i++) {
		memcpy(b + o, "X: y\r\n", 6);
		o += 6;
	}
	/* One padding header fills the rest: "P: aaaa\r\n" then CRLF. */
	memcpy(b + o, "P: ", 3);
	o += 3;
	while (o < size - 4)
		b[o++] = 'a';
	memcpy(b + o, "\r\n\r\n", 4);
	*len = size;
	return b;
}

static void
head_limits_are_enforced(void)
{
	struct http_request	*req = malloc(sizeof *req);
	uint8_t			*b, *p;
	size_t			 len;
	int			 r;

	if (req == NULL)
		abort();
	/* Host + 126 + padding = 128 fields: accepted. */
	b = big_head(126, 2000, &len);
	r = http_parse_request(b, len, req);
	CHECK(r == (int)len && req->nheaders == HTTP_MAX_HEADERS,
	    "128 headers are accepted: %d", r);
	free(b);
	b = big_head(127, 2000, &len);
	r = http_parse_request(b, len, req);
	CHECK(r == HTTP_E_TOO_LARGE, "129 headers are too large: %d", r);
	free(b);

	b = big_head(0, HTTP_HEAD_MAX, &len);
	r = http_parse_request(b, len, req);
	CHECK(r == HTTP_HEAD_MAX, "a head of exactly the limit is accepted: "
	    "%d", r);
	for (size_t k = len - 8; k < len; k++) {
		p = dup_exact(b, k);
		r = http_parse_request(p, k, req);
		CHECK(r == HTTP_NEED_MORE, "prefix %zu of a head at the limit "
		    "needs more: %d", k, r);
		free(p);
	}
	free(b);

	b = big_head(0, HTTP_HEAD_MAX + 1, &len);
	r = http_parse_request(b, len, req);
	CHECK(r == HTTP_E_TOO_LARGE, "a head one byte over the limit is too "
	    "large: %d", r);
	p = dup_exact(b, HTTP_HEAD_MAX);
	r = http_parse_request(p, HTTP_HEAD_MAX, req);
	CHECK(r == HTTP_E_TOO_LARGE, "an incomplete head filling the limit is "
	    "too large, not need more: %d", r);
	free(p);
	p = dup_exact(b, HTTP_HEAD_MAX - 1);
	r = http_parse_request(p, HTTP_HEAD_MAX - 1, req);
	CHECK(r == HTTP_NEED_MORE, "an incomplete head under the limit needs "
	    "more: %d", r);
	free(p);
	free(b);

	/* Endless request line: too large as soon as the limit is reached. */
	b = malloc(HTTP_HEAD_MAX + 100);
	if (b == NULL)
		abort();
	memcpy(b, "GET /", 5);
	memset(b + 5, 'a', HTTP_HEAD_MAX + 95);
	r = http_parse_request(b, HTTP_HEAD_MAX + 100, req);
	CHECK(r == HTTP_E_TOO_LARGE, "an endless target is too large: %d", r);
	free(b);

	/* A response too. */
	b = big_head(0, HTTP_HEAD_MAX + 1, &len);
	memcpy(b, "HTTP/1.1 200 OK\r\n", 17);
	{
		struct http_response *resp = malloc(sizeof *resp);

		if (resp == NULL)
			abort();
		r = http_parse_response(b, len, false, false, resp);
		CHECK(r == HTTP_E_TOO_LARGE, "a response head over the limit "
		    "is too large: %d", r);
		free(resp);
	}
	free(b);
	free(req);
}

static void
parse_zeroes_output_first(void)
{
	static const uint8_t	 good[] = "POST / HTTP/1.1\r\nHost: h\r\n"
	    "Content-Length: 3\r\n\r\n";
	static const uint8_t	 bad[] = "GET";
	struct http_request	 req;
	struct http_response	 resp;

	(void)http_parse_request(good, sizeof(good) - 1, &req);
	CHECK(http_parse_request(bad, sizeof(bad) - 1, &req) ==
	    HTTP_NEED_MORE, "short input needs more");
	CHECK(req.nheaders == 0 && req.content_length == 0 &&
	    req.body == HTTP_BODY_NONE && req.host.p == NULL,
	    "request output is zeroed on entry");
	memset(&resp, 0xff, sizeof resp);
	CHECK(http_parse_response(bad, 0, false, false, &resp) ==
	    HTTP_NEED_MORE, "empty input needs more");
	CHECK(resp.nheaders == 0 && resp.status == 0,
	    "response output is zeroed on entry");
}

static void
header_find_and_slice_eq_ignore_case(void)
{
	static const uint8_t	 in[] = "GET / HTTP/1.1\r\nHost: h\r\n"
	    "X-Thing: one\r\nx-thing: two\r\n\r\n";
	struct http_request	 req;
	const struct http_header *h;
	struct http_slice	 s = { "Content-Length", 14 };
	struct http_slice	 empty = { NULL, 0 };

	CHECK(http_parse_request(in, sizeof(in) - 1, &req) > 0, "parses");
	h = http_header_find(req.headers, req.nheaders, "X-THING");
	CHECK(h != NULL && slice_is(h->value, "one"),
	    "header_find returns the first match, any case");
	CHECK(http_header_find(req.headers, req.nheaders, "X-Thin") == NULL,
	    "header_find does not match a prefix");
	CHECK(http_header_find(req.headers, req.nheaders, "X-Things") ==
	    NULL, "header_find does not match a longer name");
	CHECK(http_header_find(req.headers, 0, "Host") == NULL,
	    "header_find in no headers is NULL");
	CHECK(http_slice_eq(s, "content-length"), "slice_eq ignores case");
	CHECK(!http_slice_eq(s, "content-lengt"), "slice_eq: longer slice");
	CHECK(!http_slice_eq(s, "content-lengths"),
	    "slice_eq: shorter slice");
	CHECK(http_slice_eq(empty, ""), "slice_eq: empty equals empty");
	CHECK(!http_slice_eq(empty, "a"), "slice_eq: empty is not 'a'");
}

static void
hop_by_hop_covers_fixed_set_and_connection_tokens(void)
{
	static const uint8_t	 in[] = "GET / HTTP/1.1\r\nHost: h\r\n"
	    "Connection: keep-alive, X-Secret , ,\r\nConnection: upgrade\r\n"
	    "X-Secret: 1\r\nX-Other: 2\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\n"
	    "Proxy-Authorization: Basic x\r\nTE: trailers\r\n"
	    "Trailer: X\r\nProxy-Connection: close\r\n"
	    "Proxy-Authenticate: x\r\nTransfer-Encoding: chunked\r\n"
	    "Accept: */*\r\n\r\n";
	static const struct {
		const char	*name;
		bool		 hop;
	} want[] = {
		{ "Host", false }, { "Connection", true },
		{ "X-Secret", true }, { "X-Other", false },
		{ "Keep-Alive", true }, { "Upgrade", true },
		{ "Proxy-Authorization", true }, { "TE", true },
		{ "Trailer", true }, { "Proxy-Connection", true },
		{ "Proxy-Authenticate", true },
		{ "Transfer-Encoding", true }, { "Accept", false },
	};
	struct http_request	 req;
	const struct http_header *h;
	bool			 skip[HTTP_MAX_HEADERS];

	CHECK(http_parse_request(in, sizeof(in) - 1, &req) > 0, "parses");
	/* The one-call marker agrees with the per-header check. */
	http_hop_by_hop_mark(req.headers, req.nheaders, skip);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		h = http_header_find(req.headers, req.nheaders, want[i].name);
		CHECK(h != NULL, "%s present", want[i].name);
		if (h == NULL)
			continue;
		CHECK(http_is_hop_by_hop(req.headers, req.nheaders, h) ==
		    want[i].hop, "%s hop-by-hop is %d", want[i].name,
		    want[i].hop);
		CHECK(skip[h - req.headers] == want[i].hop, "%s marked %d",
		    want[i].name, want[i].hop);
	}
}

static void
strerror_names_every_code(void)
{
	static const int codes[] = { HTTP_NEED_MORE, HTTP_E_TOO_LARGE,
	    HTTP_E_SYNTAX, HTTP_E_VERSION, HTTP_E_FRAMING, HTTP_E_TARGET,
	    HTTP_E_HOST };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = http_parse_strerror(codes[i]);

		CHECK(s != NULL && *s != '\0' && strchr(s, '\n') == NULL,
		    "code %d has a one-line message", codes[i]);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(s, http_parse_strerror(codes[j])) != 0,
			    "codes %d and %d differ", codes[i], codes[j]);
	}
	CHECK_STR(http_parse_strerror(HTTP_E_TOO_LARGE),
	    "header section too large");
	CHECK(http_parse_strerror(-99) != NULL, "unknown code has a message");
}

/* Chunked. */

#define CH_DONE	1	/* want: the body completes */
#define CH_MORE	0	/* want: still incomplete at the end */

struct chunk_case {
	const char	*name;
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	int		 want;		/* CH_DONE, CH_MORE or an error */
	const char	*data;		/* decoded data (for CH_DONE/CH_MORE) */
	size_t		 tail;		/* bytes after the body */
	size_t		 dlen;		/* 0: strlen(data) */
};

static const struct chunk_case chunk_cases[] = {
	{ "single_chunk_decodes", "5\r\nhello\r\n0\r\n\r\n",
	    .want = CH_DONE, .data = "hello" },
	{ "several_chunks_decode",
	    "3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n",
	    .want = CH_DONE, .data = "abcdef" },
	{ "hex_sizes_are_case_insensitive",
	    "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n",
	    .want = CH_DONE, .data = "0123456789abcdefghijk" },
	{ "leading_zeros_are_accepted", "0005\r\nhello\r\n000\r\n\r\n",
	    .want = CH_DONE, .data = "hello" },
	{ "sixteen_digits_are_accepted",
	    "0000000000000003\r\nabc\r\n0\r\n\r\n",
	    .want = CH_DONE, .data = "abc" },
	{ "largest_size_is_accepted", "FFFFFFFFFFFFFFFF\r\nabc",
	    .want = CH_MORE, .data = "abc" },
	{ "empty_body_is_last_chunk_only", "0\r\n\r\n",
	    .want = CH_DONE, .data = "" },
	{ "bytes_after_the_body_are_not_consumed",
	    "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
	    .want = CH_DONE, .data = "hi", .tail = 16 },
	{ "request_after_last_chunk_is_left_alone",
	    "0\r\n\r\nGET /admin HTTP/1.1\r\n",
	    .want = CH_DONE, .data = "", .tail = 21 },
	{ "extensions_are_skipped",
	    "5;foo=bar;baz\r\nhello\r\n0;last\r\n\r\n",
	    .want = CH_DONE, .data = "hello" },
	{ "extension_bws_and_quoted_values_are_skipped",
	    "5 ; a = \"x;y\\\"z\" ;b\t=\tc\r\nhello\r\n0\r\n\r\n",
	    .want = CH_DONE, .data = "hello" },
	{ "trailers_are_consumed",
	    "1\r\nx\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: a b\t\r\n\r\n",
	    .want = CH_DONE, .data = "x" },
	{ "data_may_hold_crlf_and_nul", "6\r\n\r\n\0\r\n0\r\n0\r\n\r\n",
	    .len = 16, .want = CH_DONE, .data = "\r\n\0\r\n0", .dlen = 6 },
	{ "incomplete_body_needs_more", "5\r\nhel",
	    .want = CH_MORE, .data = "hel" },
	{ "incomplete_trailer_needs_more", "0\r\nX: y\r\n",
	    .want = CH_MORE, .data = "" },

	{ "size_line_without_digits_is_syntax", "\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "extension_without_size_is_syntax", ";x\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "negative_size_is_syntax", "-5\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "hex_prefix_is_syntax", "0x5\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "plus_sign_is_syntax", "+5\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "space_after_size_is_syntax", "5 \r\nhello\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "space_before_size_is_syntax", " 5\r\nhello\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_lf_after_size_is_syntax", "5\nhello\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_cr_after_size_is_syntax", "5\rhello\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "data_longer_than_size_is_syntax", "5\r\nhelloX\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_lf_after_data_is_syntax", "5\r\nhello\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "cr_cr_after_data_is_syntax", "5\r\nhello\r\r\n0\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "bare_lf_ending_body_is_syntax", "0\r\n\n",
	    .want = HTTP_E_SYNTAX },
	{ "seventeen_digits_are_too_large",
	    "00000000000000005\r\nhello\r\n", .want = HTTP_E_TOO_LARGE },
	{ "empty_extension_name_is_syntax", "5;\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "extension_value_missing_is_syntax", "5;a=\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "extension_name_missing_is_syntax", "5;=x\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "ctl_in_extension_is_syntax", "5;a\x01\r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "nul_in_quoted_extension_is_syntax", "5;a=\"\0\"\r\nhello\r\n",
	    .len = 16, .want = HTTP_E_SYNTAX },
	{ "trailing_bws_after_extension_is_syntax", "5;a=b \r\nhello\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "trailer_obs_fold_is_syntax", "0\r\nX: a\r\n b\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "trailer_space_before_colon_is_syntax", "0\r\nX : a\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "trailer_without_colon_is_syntax", "0\r\nX\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "trailer_bare_lf_is_syntax", "0\r\nX: a\n\r\n",
	    .want = HTTP_E_SYNTAX },
	{ "trailer_ctl_is_syntax", "0\r\nX: a\x7f\r\n\r\n",
	    .want = HTTP_E_SYNTAX },
};

struct chunk_run {
	int	 result;	/* CH_DONE, CH_MORE or the error */
	uint8_t	*data;
	size_t	 ndata;
	size_t	 consumed;	/* bytes consumed before done or error */
	size_t	 runs;
};

/*
 * Feed in through http_chunked_step in pieces cut at cuts[0..ncuts), each
 * piece an exact-size heap copy, checking that each step makes progress.
 */
static void
chunk_feed(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts,
    struct chunk_run *out)
{
	struct http_chunked	 ch;
	size_t			 from = 0;

	memset(out, 0, sizeof *out);
	out->data = malloc(len + 1);
	if (out->data == NULL)
		abort();
	out->result = CH_MORE;
	http_chunked_init(&ch);
	for (size_t c = 0; c <= ncuts && out->result == CH_MORE; c++) {
		size_t	 to = c < ncuts ? cuts[c] : len;
		uint8_t	*piece = dup_exact(in + from, to - from);
		size_t	 off = 0;

		while (off < to - from) {
			bool	is_data;
			ssize_t	n = http_chunked_step(&ch, piece + off,
			    to - from - off, &is_data);

			if (n < 0) {
				out->result = (int)n;
				break;
			}
			if (n == 0) {
				CHECK(http_chunked_done(&ch),
				    "no progress before done");
				break;
			}
			CHECK((size_t)n <= to - from - off, "step overran");
			if (is_data) {
				memcpy(out->data + out->ndata, piece + off,
				    (size_t)n);
				out->ndata += (size_t)n;
			}
			off += (size_t)n;
			out->consumed += (size_t)n;
			out->runs++;
		}
		free(piece);
		from = to;
		if (http_chunked_done(&ch))
			out->result = CH_DONE;
	}
}

static void
chunked_cases_whole_split_and_byte_by_byte(void)
{
	for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]);
	    i++) {
		const struct chunk_case	*c = &chunk_cases[i];
		const uint8_t		*in = (const uint8_t *)c->in;
		size_t			 len = c->len ? c->len : strlen(c->in);
		struct chunk_run	 whole, part;
		size_t			*cuts;

		chunk_feed(in, len, NULL, 0, &whole);
		CHECK(whole.result == c->want, "%s: got %d want %d", c->name,
		    whole.result, c->want);
		if (c->want >= 0) {
			size_t dlen = c->dlen ? c->dlen : strlen(c->data);

			CHECK(whole.ndata == dlen &&
			    memcmp(whole.data, c->data, dlen) == 0,
			    "%s: data", c->name);
		}
		if (c->want == CH_DONE)
			CHECK(whole.consumed == len - c->tail,
			    "%s: consumed %zu", c->name, whole.consumed);
		if (c->want == CH_MORE)
			CHECK(whole.consumed == len, "%s: consumed %zu",
			    c->name, whole.consumed);

		/* Split at every point. */
		for (size_t k = 1; k < len; k++) {
			chunk_feed(in, len, &k, 1, &part);
			CHECK(part.result == whole.result &&
			    part.ndata == whole.ndata &&
			    memcmp(part.data, whole.data, part.ndata) == 0 &&
			    (whole.result < 0 ||
			    part.consumed == whole.consumed),
			    "%s: split at %zu differs", c->name, k);
			free(part.data);
		}

		/* One byte at a time. */
		cuts = malloc((len + 1) * sizeof(*cuts));
		if (cuts == NULL)
			abort();
		for (size_t k = 1; k < len; k++)
			cuts[k - 1] = k;
		chunk_feed(in, len, cuts, len > 0 ? len - 1 : 0, &part);
		CHECK(part.result == whole.result &&
		    part.ndata == whole.ndata &&
		    memcmp(part.data, whole.data, part.ndata) == 0,
		    "%s: byte by byte differs", c->name);
		free(part.data);
		free(cuts);
		free(whole.data);
	}
}

static void
chunked_runs_are_homogeneous(void)
{
	static const uint8_t	 in[] = "4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\n"
	    "T: v\r\n\r\n";
	static const struct {
		size_t	len;
		bool	data;
	} want[] = {
		{ 7, false }, { 4, true }, { 5, false }, { 2, true },
		{ 13, false },
	};
	struct http_chunked	 ch;
	size_t			 off = 0, i;
	bool			 is_data;
	ssize_t			 n;

	http_chunked_init(&ch);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		n = http_chunked_step(&ch, in + off, sizeof(in) - 1 - off,
		    &is_data);
		CHECK(n == (ssize_t)want[i].len && is_data == want[i].data,
		    "run %zu: %zd bytes, data %d", i, n, is_data);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	CHECK(http_chunked_done(&ch), "done after the last CRLF");
	n = http_chunked_step(&ch, in, sizeof(in) - 1, &is_data);
	CHECK(n == 0 && !is_data, "step after done returns 0");
	n = http_chunked_step(&ch, in, 0, &is_data);
	CHECK(n == 0, "step with no input returns 0");
}

static void
chunked_bounds_are_too_large(void)
{
	struct chunk_run	 run;
	uint8_t			*b;
	size_t			 n;

	/* A size line of 4096 bytes is accepted, 4097 is not. */
	b = malloc(8192);
	if (b == NULL)
		abort();
	memcpy(b, "1;x=", 4);
	memset(b + 4, 'a', 4096 - 4 - 2);
	memcpy(b + 4094, "\r\nZ\r\n0\r\n\r\n", 10);
	chunk_feed(b, 4104, NULL, 0, &run);
	CHECK(run.result == CH_DONE && run.ndata == 1,
	    "a 4096-byte size line is accepted: %d", run.result);
	free(run.data);
	memcpy(b, "1;x=", 4);
	memset(b + 4, 'a', 4097 - 4 - 2);
	memcpy(b + 4095, "\r\nZ\r\n0\r\n\r\n", 10);
	chunk_feed(b, 4105, NULL, 0, &run);
	CHECK(run.result == HTTP_E_TOO_LARGE,
	    "a 4097-byte size line is too large: %d", run.result);
	free(run.data);
	free(b);

	/* Trailers: 64 KiB accepted, one more byte is not. */
	n = 3 + 64 * 1024;
	b = malloc(n + 1);
	if (b == NULL)
		abort();
	memcpy(b, "0\r\nT: ", 6);
	memset(b + 6, 'v', n - 6 - 4);
	memcpy(b + n - 4, "\r\n\r\n", 4);
	chunk_feed(b, n, NULL, 0, &run);
	CHECK(run.result == CH_DONE, "64 KiB of trailers are accepted: %d",
	    run.result);
	free(run.data);
	memcpy(b, "0\r\nT: ", 6);
	memset(b + 6, 'v', n + 1 - 6 - 4);
	memcpy(b + n + 1 - 4, "\r\n\r\n", 4);
	chunk_feed(b, n + 1, NULL, 0, &run);
	CHECK(run.result == HTTP_E_TOO_LARGE,
	    "trailers over 64 KiB are too large: %d", run.result);
	free(run.data);
	free(b);
}

int
main(void)
{
	RUN(request_cases_whole_and_byte_by_byte);
	RUN(response_cases_whole_and_byte_by_byte);
	RUN(head_limits_are_enforced);
	RUN(parse_zeroes_output_first);
	RUN(header_find_and_slice_eq_ignore_case);
	RUN(hop_by_hop_covers_fixed_set_and_connection_tokens);
	RUN(strerror_names_every_code);
	RUN(chunked_cases_whole_split_and_byte_by_byte);
	RUN(chunked_runs_are_homogeneous);
	RUN(chunked_bounds_are_too_large);
	return test_done("test_http_parse");
}
