/* genmodel.c: not written yet. */
