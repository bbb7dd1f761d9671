/*
 * The C side of the C-versus-Rust batch comparison (see tools/ffi/README.md):
 *
 *   batch SNAPSHOT QUERIES ROUNDS
 *
 * maps SNAPSHOT and times repute_snapshot_lookup_batch over the packed 32-byte digests in
 * QUERIES (as written by `examples/batch_bench.rs`), ROUNDS times; prints the median rate.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "repute.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: batch SNAPSHOT QUERIES ROUNDS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *packed = malloc((size_t)size);
    if (fread(packed, 1, (size_t)size, f) != (size_t)size) {
        perror("read queries");
        return 2;
    }
    fclose(f);
    size_t n = (size_t)size / 32;
    int rounds = atoi(argv[3]);
    repute_snapshot snap;
    if (repute_snapshot_open(argv[1], 0, &snap) != REPUTE_OK) {
        char msg[512];
        repute_last_error_message(msg, sizeof msg);
        fprintf(stderr, "%s\n", msg);
        return 2;
    }
    uint32_t *ids = malloc(n * sizeof *ids);
    double *rates = malloc((size_t)rounds * sizeof *rates);
    for (int r = 0; r < rounds; r++) {
        double start = now();
        if (repute_snapshot_lookup_batch(snap, packed, 32, n, ids, n) != REPUTE_OK) {
            fprintf(stderr, "lookup_batch failed\n");
            return 1;
        }
        rates[r] = (double)n / (now() - start) / 1e6;
    }
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        hits += ids[i] != REPUTE_NO_RECORD;
    }
    qsort(rates, (size_t)rounds, sizeof *rates, by_value);
    printf("c repute_snapshot_lookup_batch: median %.2f M/s (min %.2f, max %.2f, %d rounds, %zu hits)\n",
           rates[rounds / 2], rates[0], rates[rounds - 1], rounds, hits);
    repute_snapshot_close(snap);
    free(ids);
    free(rates);
    free(packed);
    return 0;
}
