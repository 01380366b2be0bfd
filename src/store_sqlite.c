/* store_sqlite.c - placeholder while the module is being written. */
