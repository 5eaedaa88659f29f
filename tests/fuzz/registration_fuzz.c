/* Fuzz the daemon's registration reader: any bytes, no crash, no leak;
 * what it accepts it accepts again the same way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registration.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct registration	r, again;
	char			err[512], err2[512];
	int			rc, rc2;

	rc = registration_parse((const char *)data, len, &r, err, sizeof err);
	rc2 = registration_parse((const char *)data, len, &again, err2,
	    sizeof err2);
	if (rc != rc2 || (rc == 0 && (r.sources.n != again.sources.n ||
	    r.expires != again.expires || r.cfg.allow.n != again.cfg.allow.n)))
		abort();
	if (rc != 0 && (err[0] == '\0' || strchr(err, '\n') != NULL))
		abort();		/* every refusal is one line */
	registration_free(&r);
	registration_free(&again);
	return 0;
}
