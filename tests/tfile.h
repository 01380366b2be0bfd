/*
 * tfile.h - file helpers shared by the C unit tests (header-only, like
 * tap.h): a path in the source tree, and a whole file read into memory.
 */
#ifndef SEALPOST_TFILE_H
#define SEALPOST_TFILE_H

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

__attribute__((unused)) static char	*srcdir_file(const char *);
__attribute__((unused)) static char	*read_file(const char *, size_t *);
__attribute__((unused)) static char	*self_exe(void);

/* A path in the source tree. */
static char *
srcdir_file(const char *rel)
{
	const char	*env = getenv("SEALPOST_SRCDIR");
	char		*file, *dir, *p;

	if (env != NULL && *env != '\0') {
		xasprintf(&p, "%s/%s", env, rel);
		return p;
	}
	file = xstrdup(__FILE__);
	dir = dirname(file);
	xasprintf(&p, "%s/../%s", dir, rel);
	free(file);
	return p;
}

/* Read a whole file (/proc files too); NULL if it cannot be read. */
static char *
read_file(const char *path, size_t *lenp)
{
	FILE	*fp;
	char	*buf = NULL;
	size_t	 len = 0, cap = 0, n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			buf = xreallocarray(buf, 1, cap + 1);
		}
		if ((n = fread(buf + len, 1, cap - len, fp)) == 0)
			break;
		len += n;
	}
	if (ferror(fp)) {
		fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* The absolute path of this test program. */
static char *
self_exe(void)
{
	char	 buf[4096];
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", buf, sizeof(buf) - 1)) <= 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

#endif
