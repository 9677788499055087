/*
 * users.h - the accounts file: name, role and secret hash per line, so that
 * accounts outlive the segment.  Key-value data never touches the disk.
 */
#ifndef USERS_H
#define USERS_H

#include <stddef.h>

#include "store.h"

int	users_check_file(const char *path, char *err, size_t errlen);
int	users_load(struct store *, const char *path, char *err, size_t errlen);
int	users_save(struct store *, const char *path, char *err, size_t errlen);
const char *role_name(int role);
int	role_parse(const char *);

#endif
