/*
 * LLM accounting (issue 9), the pure half: which hosts are LLM APIs and in
 * which wire format, which requests are accounted calls (model, stream),
 * tokens from JSON and SSE responses (sse.h), run totals against
 * --llm-budget / --llm-max-requests, the providers' own 429 bodies, and the
 * summary table. No I/O: conn.c and mitm.c feed it and act on its answers.
 *
 * The life of an accounted call, as the proxy drives it:
 *
 *	p = llm_registry_match(reg, &dest);		host intercepted?
 *	llm_request_classify(p, method, path, &rq)	an accounted call?
 *	llm_stats_admit(st, ...)			refused: 429 with
 *	    llm_error_body()				the provider's JSON
 *	llm_request_body(&rq, body, len, &nb, &nlen)	model, stream; maybe
 *							a rewritten body
 *	drop Accept-Encoding (llm_header_drop), send LLM_ACCEPT_ENCODING
 *	llm_response_init(&rs, &rq, status)
 *	  SSE: every sse_next() event -> llm_response_event()
 *	  else: the body (bounded copy) -> llm_response_json()
 *	llm_response_finish(&rs, complete)
 *	llm_stats_done(st, ..., &rs.usage, ...), llm_stats_tripped()
 */
#ifndef BUILTIN_LLM_H
#define BUILTIN_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dest;
struct llm_registry;
struct llm_stats;

#define LLM_MODEL_MAX		128		/* model name, NUL included */
#define LLM_REQUEST_BODY_MAX	(1024 * 1024)	/* request bodies read */
#define LLM_RESPONSE_BODY_MAX	(4 * 1024 * 1024) /* JSON responses read */
#define LLM_ROWS_MAX		256		/* provider/model rows kept;
						   more share one "(other)" */

enum llm_result {
	LLM_OK = 0,
	LLM_E_TOO_LARGE = -1,	/* over the bound: not read */
	LLM_E_JSON = -2,	/* not the JSON expected */
};

enum llm_format {
	LLM_FMT_NONE = 0,
	LLM_ANTHROPIC,
	LLM_OPENAI,
	LLM_GOOGLE,
};

/* "anthropic", "openai", "google" ("none" for LLM_FMT_NONE). */
const char	*llm_format_name(enum llm_format);

/* -------------------------------------------------------------------------
 * Registry
 */

/* When a streaming chat/completions call without stream_options may be
 * rewritten to ask for usage (see llm_request_body). */
enum llm_add_usage {
	LLM_ADD_NEVER,		/* the provider sends usage unasked (Groq,
				   Mistral, OpenRouter, Together, Fireworks) */
	LLM_ADD_ALWAYS,		/* it documents stream_options */
	LLM_ADD_AZURE,		/* only with api-version >= 2024-09-01 or
				   the /openai/v1/ paths: older API
				   versions refuse the unknown field */
};

struct llm_provider {
	const char		*name;		/* "anthropic", "openai",
						   "google", "mistral", "groq",
						   "deepseek", "xai",
						   "openrouter", "together",
						   "fireworks", "azure"; for a
						   --llm-host, its host
						   pattern */
	const char		*pattern;	/* canonical host pattern */
	enum llm_format		 format;	/* the host's native format */
	enum llm_add_usage	 add_usage;
};

/* The built-in hosts: api.anthropic.com, api.openai.com,
 * generativelanguage.googleapis.com, api.mistral.ai, api.groq.com,
 * api.deepseek.com, api.x.ai, openrouter.ai, api.together.xyz,
 * api.fireworks.ai, *.openai.azure.com. */
struct llm_registry	*llm_registry_new(void);
void			 llm_registry_free(struct llm_registry *);

/*
 * --llm-host HOST[:anthropic|openai|google]: HOST is a policy pattern
 * (policy.h: name, *.domain, optional :port, address); the format defaults
 * to openai. Added hosts are matched before the built-in ones, in the order
 * given. Returns 0, or -1 with a one-line message naming the spec in err.
 */
int			 llm_registry_add(struct llm_registry *,
			    const char *spec, char *err, size_t errlen);

/* The provider for a destination, or NULL when it is no LLM host. The
 * pointer lives as long as the registry. */
const struct llm_provider *llm_registry_match(const struct llm_registry *,
			    const struct dest *);

/* Every provider, added ones first: 0 <= i < llm_registry_count(). */
size_t			 llm_registry_count(const struct llm_registry *);
const struct llm_provider *llm_registry_get(const struct llm_registry *,
			    size_t);

/* -------------------------------------------------------------------------
 * Requests
 */

enum llm_endpoint {
	LLM_EP_NONE = 0,
	LLM_EP_MESSAGES,	/* anthropic .../v1/messages */
	LLM_EP_CHAT,		/* openai .../chat/completions */
	LLM_EP_COMPLETIONS,	/* openai .../completions (legacy, FIM) */
	LLM_EP_RESPONSES,	/* openai .../responses */
	LLM_EP_EMBEDDINGS,	/* openai .../embeddings */
	LLM_EP_GENERATE,	/* google ...:generateContent and
				   ...:streamGenerateContent */
};

struct llm_request {
	const struct llm_provider *provider;
	enum llm_format		 format;	/* of this call: its path
						   decides (providers speak
						   each other's formats) */
	enum llm_endpoint	 endpoint;
	char			 model[LLM_MODEL_MAX];	/* printable ASCII
						   (others become '?'),
						   truncated; "" unknown */
	bool			 stream;
	bool			 may_add_usage;	/* classify: a rewrite is
						   allowed for this call */
	bool			 usage_added;	/* body: the rewrite was made:
						   strip the extra usage chunk
						   (llm_response_event) */
	bool			 body_read;	/* body: model and stream come
						   from its JSON */
	uint64_t		 body_len;	/* body: its length */
};

/*
 * Is this request an accounted LLM call? POST to, by the path without its
 * query: .../v1/messages (anthropic); .../chat/completions, .../completions,
 * .../responses, .../embeddings (openai, any prefix: /v1/, /openai/v1/,
 * /api/v1/, Azure's /openai/deployments/NAME/); .../NAME:generateContent or
 * :streamGenerateContent (google: NAME is the model, stream by the method;
 * "alt=sse" chooses SSE over a JSON array). path is the origin-form target
 * with its query (http_request.path), method as sent; neither need be
 * NUL-terminated. Returns true and fills req, or false (req zeroed).
 * Only provider is kept, by pointer.
 */
bool	llm_request_classify(const struct llm_provider *, const char *method,
	    size_t methodlen, const char *path, size_t pathlen,
	    struct llm_request *);

/*
 * The whole request body of a classified call (identity-encoded: with a
 * Content-Encoding, don't call this). Reads "model" (the last one, as most
 * servers do with duplicates; for Azure deployments without one, the
 * deployment name) and "stream" (JSON true).
 *
 * With out != NULL, a streaming chat or completions call that may be
 * rewritten and has no "stream_options" key at all gets one: *out is a
 * copy of the body with "stream_options":{"include_usage":true}, inserted
 * right after the opening brace, every other byte as sent (no re-encoding:
 * numbers and key order survive), *outlen long; send it instead, with its
 * own Content-Length. req->usage_added is then set, and the caller must
 * strip the extra final chunk this asks for, which the client did not
 * (llm_response_event says which). The client's other chunks then carry
 * "usage":null, as OpenAI documents: every SDK accepts it. Otherwise *out
 * is NULL.
 *
 * Returns LLM_OK, LLM_E_TOO_LARGE (len > LLM_REQUEST_BODY_MAX: not read) or
 * LLM_E_JSON (not a JSON object); the call stays accounted either way.
 */
int	llm_request_body(struct llm_request *, const uint8_t *body, size_t len,
	    char **out, size_t *outlen);

/*
 * Accounted calls ask for an unencoded response, so that it can be read
 * without decoding gzip, br or zstd: drop every Accept-Encoding header the
 * client sent (this says which headers) and send LLM_ACCEPT_ENCODING. The
 * client, whatever it offered, accepts identity.
 */
#define LLM_ACCEPT_ENCODING	"Accept-Encoding: identity\r\n"
bool	llm_header_drop(const char *name, size_t len);

/* A response Content-Encoding value (NULL: none) that leaves the body
 * readable: absent, empty or "identity". Otherwise don't feed the body:
 * finish the response as incomplete (estimated). */
bool	llm_encoding_readable(const char *value, size_t len);

/* Content-Type text/event-stream (any case, any parameters): feed the
 * body to sse_next(); otherwise it is JSON. */
bool	llm_is_event_stream(const char *value, size_t len);

/* -------------------------------------------------------------------------
 * Responses
 */

/*
 * Tokens as each provider reports them: input is Anthropic's input_tokens
 * (cache reads and writes excluded), OpenAI's prompt_tokens or input_tokens
 * (cached included), Google's promptTokenCount + toolUsePromptTokenCount
 * (cached included); output is output_tokens, completion_tokens, or
 * candidatesTokenCount + thoughtsTokenCount (reasoning is billed as output
 * everywhere); cache_read is cache_read_input_tokens, cached_tokens
 * (DeepSeek: prompt_cache_hit_tokens) or cachedContentTokenCount;
 * cache_write is Anthropic's cache_creation_input_tokens.
 */
struct llm_usage {
	uint64_t	input;
	uint64_t	output;
	uint64_t	cache_read;
	uint64_t	cache_write;
};

/* A response's accumulator: set up by llm_response_init, read after
 * llm_response_finish. The fields not named below are its own. */
struct llm_response {
	enum llm_format		 format;
	int			 status;
	bool			 strip;		/* req->usage_added */
	struct llm_usage	 usage;		/* the result */
	bool			 estimated;	/* finish: usage was missing or
						   partial: input ~ request
						   bytes / 4, output ~ text
						   bytes / 4 (2xx only) */
	bool			 error;		/* an error object came (in a
						   2xx stream, too) */
	uint64_t		 text_bytes;	/* generated text seen */
	uint64_t		 req_len;
	unsigned		 seen;		/* LLM_SEEN_* (internal) */
};

void	llm_response_init(struct llm_response *, const struct llm_request *,
	    int status);

/*
 * A whole JSON response (not SSE; Google's streamGenerateContent without
 * alt=sse sends a JSON array: the last usageMetadata in it counts). The
 * caller keeps a bounded copy of the body as it forwards it. Returns
 * LLM_OK, LLM_E_TOO_LARGE (len > LLM_RESPONSE_BODY_MAX) or LLM_E_JSON.
 */
int	llm_response_json(struct llm_response *, const uint8_t *, size_t);

#define LLM_EVENT_KEEP	0
#define LLM_EVENT_DROP	1

/*
 * One SSE event (sse_event type and data). Anthropic: message_start's
 * message.usage, then message_delta's usage (cumulative, last wins);
 * OpenAI: a chunk's non-null "usage" (or Groq's x_groq.usage), and the
 * Responses API's response.completed/incomplete/failed response.usage;
 * Google: each chunk's usageMetadata (last wins). Events that are no JSON
 * ("[DONE]", pings) are ignored. Returns LLM_EVENT_DROP for the extra usage
 * chunk that llm_request_body's rewrite asked for (only then): an openai
 * data object with an empty "choices" array and a "usage" object. To drop
 * it without delaying anything else, the caller forwards every byte before
 * sse_pending() at once and holds the event under way until it dispatches:
 * no SSE client can act on an event before its blank line anyway. When the
 * body was not rewritten (req->usage_added false) nothing is ever dropped
 * and nothing needs holding.
 */
int	llm_response_event(struct llm_response *, const char *type,
	    size_t typelen, const char *data, size_t datalen);

/* Is data the openai usage-only chunk: a JSON object with "choices": []
 * and a "usage" object? Its counts go to *u when u is not NULL. */
bool	llm_openai_usage_chunk(const char *data, size_t len,
	    struct llm_usage *u);

/*
 * The response ended: complete when the whole body arrived and was read
 * (not cut, not over a bound, not encoded). Sets estimated when the final
 * usage never came or the body was incomplete, and then fills what is
 * missing from the estimates (2xx only).
 */
void	llm_response_finish(struct llm_response *, bool complete);

/* -------------------------------------------------------------------------
 * Run totals and budgets
 */

enum llm_limit {
	LLM_LIMIT_NONE = 0,
	LLM_LIMIT_TOKENS,	/* --llm-budget: input + output */
	LLM_LIMIT_REQUESTS,	/* --llm-max-requests */
};

/* One provider/model row of the totals. */
struct llm_row {
	const char		*provider;
	const char		*model;		/* "-" when unknown */
	uint64_t		 requests;	/* admitted */
	uint64_t		 errors;	/* status >= 400 or failed */
	uint64_t		 refused;	/* by a limit (429) */
	uint64_t		 estimated;	/* responses with estimated
						   tokens */
	struct llm_usage	 usage;
	uint64_t		 ms;		/* summed latency */
};

/* Limits of 0 mean none. */
struct llm_stats	*llm_stats_new(uint64_t max_tokens,
			    uint64_t max_requests);
void			 llm_stats_free(struct llm_stats *);
/* New limits (0: none) for what is spent from now on. */
void			 llm_stats_set_limits(struct llm_stats *,
			    uint64_t max_tokens, uint64_t max_requests);

/*
 * A new accounted call to provider/model: LLM_LIMIT_NONE and it is counted
 * as admitted (toward --llm-max-requests, in flight until llm_stats_done),
 * or the limit that refuses it (counted as refused): answer 429 with
 * llm_error_body. Tokens refuse once input + output so far >= the budget;
 * requests once as many were admitted as allowed. Calls in flight always
 * finish, even past the budget.
 */
enum llm_limit		 llm_stats_admit(struct llm_stats *,
			    const char *provider, const char *model);

/* An admitted call ended: its usage (NULL: none), whether it failed
 * (status >= 400, or no response), estimated tokens, its latency. */
void			 llm_stats_done(struct llm_stats *,
			    const char *provider, const char *model,
			    const struct llm_usage *, bool error,
			    bool estimated, uint64_t ms);

/* The limit that would refuse the next call now, or LLM_LIMIT_NONE. */
enum llm_limit		 llm_stats_exhausted(const struct llm_stats *);

/* A limit just became exhausted (each reported once): after each admit and
 * done, for the audit event and the one stderr line. */
enum llm_limit		 llm_stats_tripped(struct llm_stats *);

/* One line, no newline, for the 429 message, the stderr line and audit:
 * "egress-run: LLM token budget exhausted: 1042 tokens used of
 * --llm-budget 1000; new LLM requests are refused". */
void			 llm_stats_describe(const struct llm_stats *,
			    enum llm_limit, char *buf, size_t len);

uint64_t		 llm_stats_tokens(const struct llm_stats *);
uint64_t		 llm_stats_inflight(const struct llm_stats *);

/* Rows in first-seen order, 0 <= i < llm_stats_rows(); totals sums them
 * (provider and model "total"). */
size_t			 llm_stats_rows(const struct llm_stats *);
const struct llm_row	*llm_stats_row(const struct llm_stats *, size_t);
void			 llm_stats_total(const struct llm_stats *,
			    struct llm_row *);

/*
 * The table for stderr at exit: a header, one line per row sorted by
 * provider then model, a total line, and notes for refused and estimated
 * calls. Allocated, NUL-terminated, lines end in '\n'; "" when no LLM call
 * was seen. Columns are as wide as their content (model names cut at 40).
 */
char			*llm_stats_summary(const struct llm_stats *);

/*
 * The 429 body for a refused call, in the format's own error shape, with
 * message (llm_stats_describe) as its message; send it with status 429 and
 * LLM_ERROR_HEADERS. Anthropic: {"type":"error","error":{"type":
 * "rate_limit_error","message":...}}; OpenAI: {"error":{"message":...,
 * "type":"insufficient_quota" (tokens) or "rate_limit_exceeded"
 * (requests),"param":null,"code":<same>}}; Google: {"error":{"code":429,
 * "message":...,"status":"RESOURCE_EXHAUSTED"}}. Allocated, *len long.
 */
char			*llm_error_body(enum llm_format, enum llm_limit,
			    const char *message, size_t *len);

/* x-should-retry: false stops the OpenAI and Anthropic SDKs from retrying
 * a 429 that will not clear before the run ends. */
#define LLM_ERROR_HEADERS \
	"Content-Type: application/json\r\nx-should-retry: false\r\n"

#endif
