/* cpu_backend.c: not written yet. */
