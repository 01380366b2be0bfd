/* age.c - placeholder while the module is being written. */
