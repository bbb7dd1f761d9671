/*
 * The C API's contract test. Run by tests/c_api.rs, which builds a snapshot and writes the
 * answers the Rust API gives (the oracle) to a file:
 *
 *   ffi_test SNAPSHOT EXPECTED CORRUPT ROUNDS
 *
 * EXPECTED has one line per query: QUERY \t VERDICT \t RECORD_ID \t NAME \t SOURCE \t MATCHED
 * (VERDICT as the repute_verdict number, RECORD_ID -1 when unlisted, "-" for an absent
 * string). CORRUPT is a copy of the snapshot with one byte flipped. ROUNDS is how many
 * times each of 4 threads repeats the lookups on one shared handle.
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
    long record_id;
    char *name;
    char *source;
    char *matched;
} expected_t;

static expected_t *cases = NULL;
static size_t case_count = 0;

static char *dup_field(const char *s) {
    if (strcmp(s, "-") == 0) {
        return NULL;
    }
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    memcpy(copy, s, n + 1);
    return copy;
}

static void load_expected(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    char line[4096];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *fields[6];
        char *rest = line;
        for (int i = 0; i < 6; i++) {
            fields[i] = rest;
            char *tab = rest ? strchr(rest, '\t') : NULL;
            if (tab) {
                *tab = 0;
                rest = tab + 1;
            } else {
                rest = NULL;
            }
        }
        if (!fields[5]) {
            fprintf(stderr, "bad expectation line\n");
            exit(2);
        }
        if (case_count == cap) {
            cap = cap ? cap * 2 : 64;
            cases = realloc(cases, cap * sizeof *cases);
        }
        expected_t *e = &cases[case_count++];
        e->query = dup_field(fields[0]);
        e->verdict = atoi(fields[1]);
        e->record_id = atol(fields[2]);
        e->name = dup_field(fields[3]);
        e->source = dup_field(fields[4]);
        e->matched = dup_field(fields[5]);
    }
    fclose(f);
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

static int same_string(const char *expected, const char *got) {
    return strcmp(expected ? expected : "", got) == 0;
}

/* Every lookup path agrees with the oracle; returns the number of disagreements. */
static int check_lookups(repute_snapshot snap, int verbose) {
    int bad = 0;
    for (size_t i = 0; i < case_count; i++) {
        const expected_t *e = &cases[i];
        repute_record r;
        if (repute_snapshot_lookup(snap, e->query, &r) != REPUTE_OK) {
            bad++;
            if (verbose) {
                char msg[512];
                repute_last_error_message(msg, sizeof msg);
                fprintf(stderr, "FAIL lookup %s: %s\n", e->query, msg);
            }
            continue;
        }
        long id = r.record_id == REPUTE_NO_RECORD ? -1 : (long)r.record_id;
        if ((int)r.verdict != e->verdict || id != e->record_id) {
            bad++;
            if (verbose) {
                fprintf(stderr, "FAIL %s: verdict %d id %ld, expected %d id %ld\n", e->query,
                        (int)r.verdict, id, e->verdict, e->record_id);
            }
            continue;
        }
        if (id >= 0) {
            char name[256], source[256], matched[1024];
            size_t needed = 0;
            repute_record byid;
            if (repute_snapshot_record_string(snap, r.record_id, REPUTE_FIELD_NAME, name,
                                              sizeof name, &needed) != REPUTE_OK ||
                repute_snapshot_record_string(snap, r.record_id, REPUTE_FIELD_SOURCE, source,
                                              sizeof source, NULL) != REPUTE_OK ||
                repute_snapshot_record(snap, r.record_id, &byid) != REPUTE_OK ||
                repute_snapshot_lookup_matched(snap, e->query, &r, matched, sizeof matched,
                                               NULL) != REPUTE_OK) {
                bad++;
                continue;
            }
            if (!same_string(e->name, name) || !same_string(e->source, source) ||
                !same_string(e->matched, matched) || needed != strlen(name) ||
                byid.verdict != r.verdict || byid.first_seen != r.first_seen ||
                byid.confidence != r.confidence) {
                bad++;
                if (verbose) {
                    fprintf(stderr, "FAIL %s: fields name=%s source=%s matched=%s\n", e->query,
                            name, source, matched);
                }
            }
        }
        if (is_hex_digest(e->query)) {
            uint8_t raw[32];
            size_t len = strlen(e->query);
            hex_to_bytes(e->query, raw);
            repute_record h, d;
            if (repute_snapshot_lookup_hex(snap, e->query, len, &h) != REPUTE_OK ||
                repute_snapshot_lookup_digest(snap, raw, len / 2, &d) != REPUTE_OK ||
                h.record_id != r.record_id || d.record_id != r.record_id ||
                d.verdict != r.verdict) {
                bad++;
                if (verbose) {
                    fprintf(stderr, "FAIL %s: hex/raw lookups disagree\n", e->query);
                }
            }
        }
    }
    /* Batches: raw SHA-256 digests packed, and hex strings of every kind. */
    size_t n = 0;
    uint8_t *packed = malloc(case_count * 32 + 1);
    uint32_t *want = malloc((case_count + 1) * sizeof *want);
    uint32_t *got = malloc((case_count + 1) * sizeof *got);
    const char **hex = malloc((case_count + 1) * sizeof *hex);
    uint32_t *hex_want = malloc((case_count + 1) * sizeof *hex_want);
    size_t hex_n = 0;
    for (size_t i = 0; i < case_count; i++) {
        uint32_t id = cases[i].record_id < 0 ? REPUTE_NO_RECORD : (uint32_t)cases[i].record_id;
        if (is_hex_digest(cases[i].query)) {
            hex[hex_n] = cases[i].query;
            hex_want[hex_n++] = id;
            if (strlen(cases[i].query) == 64) {
                hex_to_bytes(cases[i].query, packed + 32 * n);
                want[n++] = id;
            }
        }
    }
    if (repute_snapshot_lookup_batch(snap, packed, 32, n, got, n) != REPUTE_OK ||
        memcmp(got, want, n * sizeof *got) != 0) {
        bad++;
        if (verbose) {
            fprintf(stderr, "FAIL raw batch of %zu disagrees\n", n);
        }
    }
    if (repute_snapshot_lookup_hex_batch(snap, hex, hex_n, got, hex_n) != REPUTE_OK ||
        memcmp(got, hex_want, hex_n * sizeof *got) != 0) {
        bad++;
        if (verbose) {
            fprintf(stderr, "FAIL hex batch of %zu disagrees\n", hex_n);
        }
    }
    free(packed);
    free(want);
    free(got);
    free(hex);
    free(hex_want);
    return bad;
}

typedef struct {
    repute_snapshot snap;
    int rounds;
    int bad;
} thread_arg_t;

static void *thread_main(void *p) {
    thread_arg_t *arg = p;
    for (int i = 0; i < arg->rounds; i++) {
        arg->bad += check_lookups(arg->snap, 0);
    }
    return NULL;
}

static void check_bad_arguments(repute_snapshot snap, const char *corrupt) {
    repute_record r;
    char buf[64];
    size_t needed = 12345;
    uint32_t ids[4];
    uint8_t raw[32] = {0};

    EXPECT_CODE(repute_snapshot_lookup(snap, NULL, &r), REPUTE_ERROR_NULL_ARGUMENT);
    CHECK(repute_last_error_code() == REPUTE_ERROR_NULL_ARGUMENT, "last error code");
    size_t len = repute_last_error_message(buf, sizeof buf);
    CHECK(len > 0 && strlen(buf) == (len < sizeof buf ? len : sizeof buf - 1),
          "last error message: %zu %s", len, buf);
    CHECK(strstr(buf, "repute_snapshot_lookup") != NULL, "message names the call: %s", buf);
    CHECK(repute_last_error_message(NULL, 0) == len, "length without a buffer");

    EXPECT_CODE(repute_snapshot_lookup(snap, "44d88612fea8a8f36de82e1278abb02f", NULL),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup(snap, "", &r), REPUTE_ERROR_INVALID_QUERY);
    EXPECT_CODE(repute_snapshot_lookup(snap, "http://", &r), REPUTE_ERROR_INVALID_QUERY);
    EXPECT_CODE(repute_snapshot_lookup(snap, "\xff\xfe.example", &r),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_hex(snap, "zz", 2, &r), REPUTE_ERROR_INVALID_QUERY);
    EXPECT_CODE(repute_snapshot_lookup_hex(snap, NULL, 32, &r), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_digest(snap, raw, 17, &r),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_digest(snap, NULL, 16, &r),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, raw, 15, 1, ids, 4),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, raw, 16, 2, ids, 1),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, NULL, 16, 1, ids, 4),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, raw, 16, 1, NULL, 4),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, raw, 16, (size_t)-1, ids, (size_t)-1),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_batch(snap, NULL, 16, 0, NULL, 0), REPUTE_OK);
    const char *hex[2] = {"44d88612fea8a8f36de82e1278abb02f", "not hex"};
    EXPECT_CODE(repute_snapshot_lookup_hex_batch(snap, hex, 2, ids, 4),
                REPUTE_ERROR_INVALID_QUERY);
    const char *null_hex[1] = {NULL};
    EXPECT_CODE(repute_snapshot_lookup_hex_batch(snap, null_hex, 1, ids, 4),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_lookup_url(snap, NULL, &r), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_record(snap, 0xfffffff0u, &r), REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_record_string(snap, 0, 99, buf, sizeof buf, NULL),
                REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_record_string(snap, 0, REPUTE_FIELD_SOURCE, NULL, 8, NULL),
                REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_record_string(snap, 0, REPUTE_FIELD_SOURCE, NULL, 0, &needed),
                REPUTE_ERROR_BUFFER_TOO_SMALL);
    CHECK(needed > 0 && needed < 64, "needed length reported: %zu", needed);
    EXPECT_CODE(repute_snapshot_record_string(snap, 0, REPUTE_FIELD_SOURCE, buf, needed, NULL),
                REPUTE_ERROR_BUFFER_TOO_SMALL);
    CHECK(buf[0] == 0, "a too-small buffer gets an empty string");
    EXPECT_CODE(repute_snapshot_metadata_json(snap, buf, 4, &needed),
                REPUTE_ERROR_BUFFER_TOO_SMALL);
    char *json = malloc(needed + 1);
    EXPECT_CODE(repute_snapshot_metadata_json(snap, json, needed + 1, NULL), REPUTE_OK);
    CHECK(json[0] == '{' && strstr(json, "\"records\"") != NULL, "metadata json: %s", json);
    free(json);

    /* Handles that are not open. */
    EXPECT_CODE(repute_snapshot_lookup(0, "example.com", &r), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_lookup(0xdeadbeef12345678ull, "example.com", &r),
                REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_lookup(snap + (1ull << 32), "example.com", &r),
                REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_close(0), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_verify(12345), REPUTE_ERROR_INVALID_HANDLE);

    /* Opening what is not a good snapshot. */
    repute_snapshot other = 77;
    EXPECT_CODE(repute_snapshot_open(NULL, 0, &other), REPUTE_ERROR_NULL_ARGUMENT);
    CHECK(other == 0, "out is zeroed on failure");
    EXPECT_CODE(repute_snapshot_open("/nonexistent/repute.snap", 0, &other), REPUTE_ERROR_IO);
    EXPECT_CODE(repute_snapshot_open(".", 0, &other), REPUTE_ERROR_IO);
    EXPECT_CODE(repute_snapshot_open(corrupt, 0x100, &other), REPUTE_ERROR_INVALID_ARGUMENT);
    EXPECT_CODE(repute_snapshot_open(corrupt, 0, NULL), REPUTE_ERROR_NULL_ARGUMENT);
    EXPECT_CODE(repute_snapshot_open(corrupt, REPUTE_OPEN_VERIFY, &other),
                REPUTE_ERROR_CHECKSUM);
    EXPECT_CODE(repute_snapshot_open(corrupt, REPUTE_OPEN_READ, &other), REPUTE_OK);
    EXPECT_CODE(repute_snapshot_verify(other), REPUTE_ERROR_CHECKSUM);
    EXPECT_CODE(repute_snapshot_close(other), REPUTE_OK);
    /* A closed handle, and its slot reused by a new open: the old handle stays dead. */
    EXPECT_CODE(repute_snapshot_verify(other), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_close(other), REPUTE_ERROR_INVALID_HANDLE);
    repute_snapshot reused = 0;
    EXPECT_CODE(repute_snapshot_open(corrupt, 0, &reused), REPUTE_OK);
    CHECK(reused != other, "a new handle differs from a closed one");
    EXPECT_CODE(repute_snapshot_lookup(other, "example.com", &r), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_close(reused), REPUTE_OK);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SNAPSHOT EXPECTED CORRUPT ROUNDS\n", argv[0]);
        return 2;
    }
    load_expected(argv[2]);
    int rounds = atoi(argv[4]);

    const char *version = repute_version();
    CHECK(version != NULL && strlen(version) > 0, "version");

    repute_snapshot snap = 0;
    EXPECT_CODE(repute_snapshot_open(argv[1], 0, &snap), REPUTE_OK);
    EXPECT_CODE(repute_snapshot_verify(snap), REPUTE_OK);
    uint32_t records = 0;
    EXPECT_CODE(repute_snapshot_record_count(snap, &records), REPUTE_OK);
    CHECK(records > 0, "record count %u", records);

    int bad = check_lookups(snap, 1);
    CHECK(bad == 0, "%d lookups disagree with the Rust API (%zu cases)", bad, case_count);

    thread_arg_t args[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){.snap = snap, .rounds = rounds, .bad = 0};
        CHECK(pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0, "thread");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].bad == 0, "thread %d: %d disagreements", i, args[i].bad);
    }

    check_bad_arguments(snap, argv[3]);

    EXPECT_CODE(repute_snapshot_close(snap), REPUTE_OK);
    repute_record r;
    EXPECT_CODE(repute_snapshot_lookup(snap, "example.com", &r), REPUTE_ERROR_INVALID_HANDLE);
    EXPECT_CODE(repute_snapshot_close(snap), REPUTE_ERROR_INVALID_HANDLE);

    for (size_t i = 0; i < case_count; i++) {
        free(cases[i].query);
        free(cases[i].name);
        free(cases[i].source);
        free(cases[i].matched);
    }
    free(cases);
    printf("ffi_test: %zu cases, 4 threads x %d rounds, %d failures\n", case_count, rounds,
           failures);
    return failures ? 1 : 0;
}
