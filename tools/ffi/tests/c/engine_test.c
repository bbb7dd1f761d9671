/*
 * The engine part of the C API's contract test. Run by tests/c_api.rs, which makes an
 * update state directory holding a base snapshot and a delta over it, with current.json
 * naming the base alone and NEXT (a current.json naming base + delta) beside it, and
 * writes what the Rust engine answers for each set (the oracles):
 *
 *   engine_test STATE_DIR NEXT BASE DELTA EXPECTED_BASE EXPECTED_DELTA ROUNDS
 *
 * EXPECTED_* lines are QUERY \t VERDICT \t NAME \t SOURCE ("-" for an absent string).
 * The program opens the state directory, checks the base answers, pins the view, renames
 * NEXT over current.json and reloads, checks the new answers on the engine (single and
 * batched, from 4 threads) and the old ones on the pinned view, breaks current.json to see
 * a failed reload keep the view, and checks handle kinds, closed handles and bad arguments.
 *
 * Prints one line per failed check and exits 1 when any failed.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repute.h"

static int failures = 0;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
        }                                                                             \
    } while (0)

#define EXPECT_CODE(call, code)                                                       \
    do {                                                                              \
        repute_result got_ = (call);                                                  \
        CHECK(got_ == (code), "%s returned %s, expected %s", #call,                   \
              repute_result_name((int32_t)got_), repute_result_name((int32_t)(code))); \
    } while (0)

typedef struct {
    char *query;
    int verdict;
    char *name;
    char *source;
} expected_t;

typedef struct {
    expected_t *cases;
    size_t count;
} expectations_t;

static char *dup_field(const char *s) {
    if (strcmp(s, "-") == 0) {
        return NULL;
    }
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    memcpy(copy, s, n + 1);
    return copy;
}

static expectations_t load_expected(const char *path) {
    expectations_t ex = {NULL, 0};
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    char line[4096];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *fields[4];
        char *rest = line;
        for (int i = 0; i < 4; i++) {
            fields[i] = rest;
            char *tab = rest ? strchr(rest, '\t') : NULL;
            if (tab) {
                *tab = 0;
                rest = tab + 1;
            } else {
                rest = NULL;
            }
        }
        if (!fields[3]) {
            fprintf(stderr, "bad expectation line\n");
            exit(2);
        }
        if (ex.count == cap) {
            cap = cap ? cap * 2 : 64;
            ex.cases = realloc(ex.cases, cap * sizeof *ex.cases);
        }
        expected_t *e = &ex.cases[ex.count++];
        e->query = dup_field(fields[0]);
        e->verdict = atoi(fields[1]);
        e->name = dup_field(fields[2]);
        e->source = dup_field(fields[3]);
    }
    fclose(f);
    return ex;
}

static void free_expected(expectations_t *ex) {
    for (size_t i = 0; i < ex->count; i++) {
        free(ex->cases[i].query);
        free(ex->cases[i].name);
        free(ex->cases[i].source);
    }
    free(ex->cases);
}

static int is_hex_digest(const char *s) {
    size_t n = strlen(s);
    if (n != 32 && n != 40 && n != 64) {
        return 0;
    }
    return strspn(s, "0123456789abcdefABCDEF") == n;
}

static void hex_to_bytes(const char *hex, uint8_t *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static int same_string(const char *want, const char *got) {
    return want ? strcmp(want, got) == 0 : got[0] == 0;
}

/* Checks one record id's fields against an expectation; returns the failures. */
static int check_record(repute_engine e, uint32_t id, const expected_t *want, const char *how) {
    int bad = 0;
    repute_record r;
    char name[512], source[512];
    if (repute_engine_record(e, id, &r) != REPUTE_OK ||
        repute_engine_record_string(e, id, REPUTE_FIELD_NAME, name, sizeof name, NULL) != REPUTE_OK ||
        repute_engine_record_string(e, id, REPUTE_FIELD_SOURCE, source, sizeof source, NULL) != REPUTE_OK) {
        fprintf(stderr, "FAIL %s %s: record %" PRIu32 " unreadable\n", how, want->query, id);
        return 1;
    }
    if ((int)r.verdict != want->verdict || !same_string(want->name, name) ||
        !same_string(want->source, source)) {
        fprintf(stderr, "FAIL %s %s: record %" PRIu32 " is %d/%s/%s, expected %d/%s/%s\n", how,
                want->query, id, (int)r.verdict, name, source, want->verdict,
                want->name ? want->name : "-", want->source ? want->source : "-");
        bad++;
    }
    return bad;
}

/* Every query through repute_engine_lookup, and the digests through the batch call. */
static int check_all(repute_engine e, const expectations_t *ex, const char *how) {
    int bad = 0;
    for (size_t i = 0; i < ex->count; i++) {
        const expected_t *want = &ex->cases[i];
        repute_record r;
        repute_result rc = repute_engine_lookup(e, want->query, &r);
        if (rc != REPUTE_OK) {
            fprintf(stderr, "FAIL %s lookup %s: %s\n", how, want->query,
                    repute_result_name((int32_t)rc));
            bad++;
            continue;
        }
        if ((int)r.verdict != want->verdict) {
            fprintf(stderr, "FAIL %s lookup %s: verdict %d, expected %d\n", how, want->query,
                    (int)r.verdict, want->verdict);
            bad++;
            continue;
        }
        if (r.verdict != REPUTE_VERDICT_UNKNOWN) {
            bad += check_record(e, r.record_id, want, how);
        }
    }
    /* Batches: the SHA-256 digests, packed. */
    size_t n = 0;
    for (size_t i = 0; i < ex->count; i++) {
        n += strlen(ex->cases[i].query) == 64 && is_hex_digest(ex->cases[i].query);
    }
    uint8_t *packed = malloc(n * 32 + 1);
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    const expected_t **which = malloc((n + 1) * sizeof *which);
    size_t k = 0;
    for (size_t i = 0; i < ex->count; i++) {
        if (strlen(ex->cases[i].query) == 64 && is_hex_digest(ex->cases[i].query)) {
            hex_to_bytes(ex->cases[i].query, packed + 32 * k);
            which[k++] = &ex->cases[i];
        }
    }
    repute_result rc = repute_engine_lookup_batch(e, packed, 32, n, ids, n);
    if (rc != REPUTE_OK) {
        fprintf(stderr, "FAIL %s batch: %s\n", how, repute_result_name((int32_t)rc));
        bad++;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (which[i]->verdict == REPUTE_VERDICT_UNKNOWN) {
                if (ids[i] != REPUTE_NO_RECORD) {
                    fprintf(stderr, "FAIL %s batch %s: listed, expected unlisted\n", how,
                            which[i]->query);
                    bad++;
                }
            } else if (ids[i] == REPUTE_NO_RECORD) {
                fprintf(stderr, "FAIL %s batch %s: unlisted\n", how, which[i]->query);
                bad++;
            } else {
                bad += check_record(e, ids[i], which[i], how);
            }
        }
    }
    free(packed);
    free(ids);
    free(which);
    return bad;
}

typedef struct {
    repute_engine engine;
    const expectations_t *ex;
    int rounds;
    int failures;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        w->failures += check_all(w->engine, w->ex, "thread");
    }
    return NULL;
}

static int status_has(repute_engine e, const char *needle) {
    size_t needed = 0;
    repute_result rc = repute_engine_status_json(e, NULL, 0, &needed);
    if (rc != REPUTE_ERROR_BUFFER_TOO_SMALL || needed == 0) {
        return 0;
    }
    char *buf = malloc(needed + 1);
    rc = repute_engine_status_json(e, buf, needed + 1, NULL);
    int found = rc == REPUTE_OK && strstr(buf, needle) != NULL;
    if (!found) {
        fprintf(stderr, "status %s lacks %s\n", rc == REPUTE_OK ? buf : "(failed)", needle);
    }
    free(buf);
    return found;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr,
                "usage: engine_test STATE_DIR NEXT BASE DELTA EXPECTED_BASE EXPECTED_DELTA "
                "ROUNDS\n");
        return 2;
    }
    const char *state = argv[1], *next = argv[2], *base = argv[3], *delta = argv[4];
    expectations_t old_answers = load_expected(argv[5]);
    expectations_t new_answers = load_expected(argv[6]);
    int rounds = atoi(argv[7]);
    char current[4096];
    snprintf(current, sizeof current, "%s/current.json", state);

    repute_engine e = 0;
    EXPECT_CODE(repute_engine_open_state_dir(state, &e), REPUTE_OK);
    CHECK(e != 0, "an engine handle");
    failures += check_all(e, &old_answers, "base");
    CHECK(status_has(e, "\"sequence\":1"), "status names sequence 1");
    CHECK(status_has(e, "\"deltas\":[]"), "no deltas yet");

    /* Handle kinds: a snapshot call refuses the engine and leaves it open. */
    repute_record r;
    EXPECT_CODE(repute_snapshot_close(e), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_lookup(e, old_answers.cases[0].query, &r),
                REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_lookup(e, old_answers.cases[0].query, &r), REPUTE_OK);
    repute_snapshot snap = 0;
    EXPECT_CODE(repute_snapshot_open(base, 0, &snap), REPUTE_OK);
    EXPECT_CODE(repute_engine_close(snap), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_lookup(snap, old_answers.cases[0].query, &r),
                REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_reload(snap, NULL), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_lookup(snap, old_answers.cases[0].query, &r), REPUTE_OK);
    EXPECT_CODE(repute_snapshot_close(snap), REPUTE_OK);

    /* Nothing changed: reload swaps nothing. */
    int swapped = -1;
    EXPECT_CODE(repute_engine_reload(e, &swapped), REPUTE_OK);
    CHECK(swapped == 0, "nothing to swap (%d)", swapped);

    /* Pin the base view, install base + delta, reload. */
    repute_engine pinned = 0;
    EXPECT_CODE(repute_engine_pin(e, &pinned), REPUTE_OK);
    CHECK(pinned != 0 && pinned != e, "a new handle for the pinned view");
    CHECK(rename(next, current) == 0, "rename the next current.json into place");
    EXPECT_CODE(repute_engine_reload(e, &swapped), REPUTE_OK);
    CHECK(swapped == 1, "the delta was swapped in (%d)", swapped);
    failures += check_all(e, &new_answers, "delta");
    failures += check_all(pinned, &old_answers, "pinned");
    CHECK(status_has(e, "\"sequence\":2"), "status names sequence 2");
    CHECK(status_has(e, "\"ok\":true"), "the reload is recorded");
    CHECK(status_has(pinned, "\"pinned\":true"), "a pinned status says so");
    CHECK(status_has(pinned, "\"sequence\":1"), "the pinned view stays at sequence 1");
    EXPECT_CODE(repute_engine_reload(pinned, NULL), REPUTE_ERROR_INVALID_ARGUMENT);

    /* 4 threads share the engine handle. */
    pthread_t threads[4];
    worker_t workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (worker_t){e, &new_answers, rounds, 0};
        CHECK(pthread_create(&threads[i], NULL, worker, &workers[i]) == 0, "thread %d", i);
    }
    for (int i = 0; i < 4; i++) {
        EXPECT_CODE(repute_engine_reload(e, NULL), REPUTE_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        failures += workers[i].failures;
    }

    /* A broken current.json: the reload fails and the engine keeps its view. */
    char broken[4200];
    snprintf(broken, sizeof broken, "%s.broken", current);
    write_file(broken, "{ not json");
    CHECK(rename(broken, current) == 0, "rename the broken current.json into place");
    EXPECT_CODE(repute_engine_reload(e, &swapped), REPUTE_ERROR_UPDATE);
    CHECK(swapped == 0, "nothing swapped on failure");
    CHECK(repute_last_error_code() == REPUTE_ERROR_UPDATE, "last error code");
    char msg[1024];
    CHECK(repute_last_error_message(msg, sizeof msg) > 0 &&
              strstr(msg, "repute_engine_reload") != NULL,
          "the message names the call: %s", msg);
    failures += check_all(e, &new_answers, "after a failed reload");
    CHECK(status_has(e, "\"ok\":false"), "the failed reload is recorded");

    /* Base + delta by path agrees with the state directory. */
    repute_engine direct = 0;
    const char *deltas[1] = {delta};
    EXPECT_CODE(repute_engine_open(base, deltas, 1, &direct), REPUTE_OK);
    failures += check_all(direct, &new_answers, "open(base, delta)");
    EXPECT_CODE(repute_engine_reload(direct, NULL), REPUTE_ERROR_INVALID_ARGUMENT);
    repute_engine bad = 0;
    EXPECT_CODE(repute_engine_open(delta, NULL, 0, &bad), REPUTE_ERROR_UPDATE);
    CHECK(bad == 0, "no handle on failure");
    EXPECT_CODE(repute_engine_open(base, NULL, 1, &bad), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_open(NULL, NULL, 0, &bad), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_open(base, NULL, 0, NULL), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_open("/nonexistent/base.snap", NULL, 0, &bad), REPUTE_ERROR_IO);
    EXPECT_CODE(repute_engine_open_state_dir(base, &bad), REPUTE_ERROR_UPDATE);
    EXPECT_CODE(repute_engine_open_state_dir(NULL, &bad), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_lookup(e, NULL, &r), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_lookup(e, "", &r), REPUTE_ERROR_INVALID_QUERY);
    EXPECT_CODE(repute_engine_lookup_batch(e, (const uint8_t *)"x", 7, 1, (uint32_t *)msg, 1),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_engine_record(e, 0xfffffff0u, &r), REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_engine_status_json(e, NULL, 5, NULL), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_engine_pin(e, NULL), REPUTE_ERROR_NULL_ARGUMENT);

    /* Closing: every kind by its own call, once. */
    EXPECT_CODE(repute_engine_close(direct), REPUTE_OK);
    EXPECT_CODE(repute_engine_close(pinned), REPUTE_OK);
    EXPECT_CODE(repute_engine_close(pinned), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_lookup(pinned, new_answers.cases[0].query, &r),
                REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_close(e), REPUTE_OK);
    EXPECT_CODE(repute_engine_reload(e, NULL), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_status_json(e, msg, sizeof msg, NULL), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_engine_close(0), REPUTE_ERROR_INVALID_HANDLE);

    free_expected(&old_answers);
    free_expected(&new_answers);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("engine_test: ok\n");
    return 0;
}
