/* Fuzz the JSON config loader: any bytes, no crash, no leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config	c;
	char		err[512];

	config_init(&c);
	(void)config_load_json(&c, (const char *)data, len, "fuzz.json", err,
	    sizeof err);
	config_free(&c);
	return 0;
}
