/*
 * A minimal table-test harness: CHECK() records a failure with file:line and
 * carries on; test_done() prints a summary and gives main's return value.
 */
#ifndef TESTS_UNIT_TEST_H
#define TESTS_UNIT_TEST_H

#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond, ...) do {						\
	test_checks++;							\
	if (!(cond)) {							\
		test_failures++;					\
		fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, \
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
	}								\
} while (0)

#define CHECK_STR(a, b) do {						\
	const char *a_ = (a), *b_ = (b);				\
	CHECK(a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0,		\
	    "'%s' != '%s'", a_ ? a_ : "(null)", b_ ? b_ : "(null)");	\
} while (0)

/* Run one named test function. */
#define RUN(fn) do {							\
	int before_ = test_failures;					\
	fn();								\
	if (test_failures != before_)					\
		fprintf(stderr, "--- %s failed\n", #fn);		\
} while (0)

static inline int
test_done(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks,
	    test_failures);
	return test_failures == 0 ? 0 : 1;
}

#endif
