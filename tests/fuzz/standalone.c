/*
 * Replays files (or every file in directories) through a fuzz target's
 * LLVMFuzzerTestOneInput, for builds without libFuzzer: the seed corpus and
 * every past crash run as an ordinary regression test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
run_file(const char *path)
{
	FILE	*f = fopen(path, "rb");
	uint8_t	*buf;
	long	 len;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	/* An exact-size heap copy, so ASan sees reads past the end. */
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			struct dirent **ents;
			int m = scandir(argv[i], &ents, NULL, alphasort);
			for (int j = 0; j < m; j++) {
				if (ents[j]->d_name[0] != '.') {
					char p[4096];
					snprintf(p, sizeof p, "%s/%s", argv[i],
					    ents[j]->d_name);
					if (run_file(p) != 0)
						return 1;
					n++;
				}
				free(ents[j]);
			}
			free(ents);
		} else {
			if (run_file(argv[i]) != 0)
				return 1;
			n++;
		}
	}
	fprintf(stderr, "replayed %d inputs\n", n);
	return n > 0 ? 0 : 1;
}
