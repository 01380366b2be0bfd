/*
 * config_file.c - fuzz target: sealpost.conf through config_load().
 *
 * The input is a configuration file.  It is written to a memfd and loaded
 * by path (/proc/self/fd/N), so config_load() reads it exactly as it reads
 * /etc/sealpost/sealpost.conf and config.h needs no entry point for memory.
 * An error must be one message naming the file; a loaded config must keep
 * the cross-option rules and print (both forms).
 */
#include "build.h"

#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

#define FUZZ_CONF_INPUT	(64 * 1024)	/* real files are ~2 KiB */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 fd = -1;
	static char	 path[64];
	static FILE	*devnull;
	struct config	*cfg = NULL;
	char		*error = NULL;

	if (size > FUZZ_CONF_INPUT)
		return 0;
	if (fd == -1) {
		if ((fd = memfd_create("sealpost-fuzz.conf", MFD_CLOEXEC)) ==
		    -1 || (devnull = fopen("/dev/null", "w")) == NULL)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();

	if (config_load(path, &cfg, &error) != 0) {
		FUZZ_CHECK(cfg == NULL && error != NULL);
		FUZZ_CHECK(strncmp(error, path, strlen(path)) == 0);
		free(error);
		return 0;
	}
	FUZZ_CHECK(cfg != NULL && error == NULL);
	FUZZ_CHECK(strcmp(cfg->path, path) == 0);
	FUZZ_CHECK(cfg->smtp_max_header_size >= cfg->smtp_max_line_length);
	config_print(cfg, devnull, 0);
	config_print(cfg, devnull, 1);
	config_free(&cfg);
	FUZZ_CHECK(cfg == NULL);
	return 0;
}
