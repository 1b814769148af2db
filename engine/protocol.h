/*
 * engine/protocol.h: the wire protocol between PostgreSQL backends (extension/) and the engine process
 * (pg_infer_engine), over the engine's Unix-domain socket. Plain C, shared by both sides: the extension
 * includes nothing else of the engine.
 *
 * A connection carries one request at a time. Every message is a frame:
 *   uint32 length of what follows (1 + the body), uint8 message type, then the body: fields;
 *   a field is uint16 tag, uint32 length, then `length` bytes.
 * Integers are in the host's byte order (both ends run on the same machine). Numbers travel as fields of
 * 8 bytes (int64 or IEEE double), strings as their UTF-8 bytes without a terminator, a list of strings as
 * repeated fields with the same tag, token ids as int32 arrays.
 *
 * The client sends one request frame and reads frames until OK or ERROR; a streaming generation sends
 * PIECE frames before its OK. Closing the connection abandons the request: the engine stops it and frees
 * what it held.
 */
#ifndef PG_INFER_PROTOCOL_H
#define PG_INFER_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the frame header (length and type) and of a field header (tag and length). */
#define PGI_FRAME_HEADER 5
#define PGI_FIELD_HEADER 6
/* Largest frame body either side accepts. */
#define PGI_MAX_FRAME (64u * 1024u * 1024u)

/* Message types. */
typedef enum PgiMessage {
    PGI_MSG_LOAD = 1,       /* request: NAME, PATH, OPTIONS (JSON object text); OK may hold MESSAGE: why device
                             * auto runs the model on the CPU although a GPU is present */
    PGI_MSG_UNLOAD = 2,     /* request: NAME */
    PGI_MSG_MODELS = 3,     /* request: nothing; OK holds one MODEL_ROW per model */
    PGI_MSG_GENERATE = 4,   /* request: MODEL, PROMPT... (several: a batch, one TEXT each in the OK, in
                             * order), sampling fields, STOP..., STREAM */
    PGI_MSG_TOKENIZE = 5,   /* request: MODEL, TEXT; OK holds IDS */
    PGI_MSG_DETOKENIZE = 6, /* request: MODEL, IDS; OK holds TEXT */
    PGI_MSG_STATS = 7,      /* request: nothing; OK holds one STATS_ROW per model */
    PGI_MSG_CHAT = 8,       /* request: as GENERATE with MESSAGES (JSON array) instead of PROMPT */
    PGI_MSG_OK = 64,        /* reply: the request succeeded; fields depend on the request */
    PGI_MSG_ERROR = 65,     /* reply: CODE, MESSAGE, optional HINT */
    PGI_MSG_PIECE = 66      /* reply: TEXT, one piece of a streaming generation */
} PgiMessage;

/* Field tags. */
typedef enum PgiField {
    PGI_F_NAME = 1,           /* string */
    PGI_F_PATH = 2,           /* string */
    PGI_F_OPTIONS = 3,        /* string: JSON object */
    PGI_F_MODEL = 4,          /* string: model name */
    PGI_F_PROMPT = 5,         /* string */
    PGI_F_MAX_TOKENS = 6,     /* int64 */
    PGI_F_TEMPERATURE = 7,    /* double */
    PGI_F_TOP_P = 8,          /* double */
    PGI_F_TOP_K = 9,          /* int64 */
    PGI_F_MIN_P = 10,         /* double */
    PGI_F_REPEAT_PENALTY = 11,/* double */
    PGI_F_SEED = 12,          /* int64; absent: a seed of the engine's choosing */
    PGI_F_STOP = 13,          /* string, repeated */
    PGI_F_STREAM = 14,        /* int64 0/1 */
    PGI_F_TEXT = 15,          /* string */
    PGI_F_IDS = 16,           /* int32 array */
    PGI_F_MESSAGES = 17,      /* string: JSON array of {role, content} */
    PGI_F_CODE = 18,          /* int64: a PgiStatus */
    PGI_F_MESSAGE = 19,       /* string */
    PGI_F_HINT = 20,          /* string */
    PGI_F_ROW = 21,           /* nested fields: one row of MODELS or STATS */
    PGI_F_ARCHITECTURE = 22,  /* string */
    PGI_F_PARAMETERS = 23,    /* int64 */
    PGI_F_TENSOR_TYPE = 24,   /* string */
    PGI_F_CONTEXT = 25,       /* int64 */
    PGI_F_DEVICE = 26,        /* string */
    PGI_F_MEMORY = 27,        /* int64 bytes */
    PGI_F_STATUS = 28,        /* string */
    PGI_F_REQUESTS = 29,      /* int64 */
    PGI_F_PROMPT_TOKENS = 30, /* int64 */
    PGI_F_GEN_TOKENS = 31,    /* int64 */
    PGI_F_TOKENS_PER_S = 32,  /* double */
    PGI_F_QUEUED = 33,        /* int64 */
    PGI_F_ACTIVE = 34,        /* int64 */
    PGI_F_KV_USED = 35,       /* int64 */
    PGI_F_KV_FREE = 36,       /* int64 */
    PGI_F_PREFIX_PROMPT = 37, /* int64: prompt tokens that needed K/V */
    PGI_F_PREFIX_HITS = 38,   /* int64: of those, tokens the prefix cache supplied */
    PGI_F_PREFIX_CACHE = 39,  /* int64 0/1: the request may use and fill the prefix cache (default 1) */
    PGI_F_DEVICE_FREE = 40    /* int64: bytes of device memory free now (GPU models only) */
} PgiField;

/* Error codes of ERROR replies; the extension maps them to SQLSTATEs. */
typedef enum PgiStatus {
    PGI_ST_INVALID_ARGUMENT = 1, /* 22023 invalid_parameter_value */
    PGI_ST_CORRUPT_FILE = 2,     /* XX001 data_corrupted */
    PGI_ST_UNSUPPORTED = 3,      /* 0A000 feature_not_supported */
    PGI_ST_NOT_FOUND = 4,        /* 42704 undefined_object (unknown model) */
    PGI_ST_IO_ERROR = 5,         /* 58030 io_error */
    PGI_ST_OUT_OF_MEMORY = 6,    /* 53000 insufficient_resources */
    PGI_ST_INTERNAL = 7,         /* XX000 internal_error */
    PGI_ST_BUSY = 8,             /* 53000 insufficient_resources: the queue is full */
    PGI_ST_NOT_READY = 9,        /* 55000 object_not_in_prerequisite_state: model still loading */
    PGI_ST_PERMISSION = 10,      /* 42501 insufficient_privilege: path outside model_dir */
    PGI_ST_TIMEOUT = 11,         /* 57014 query_canceled: request_timeout passed */
    PGI_ST_DEVICE_LOST = 12      /* 58000 system_error: the GPU failed; the engine restarts */
} PgiStatus;

/* Reads the fields of a frame body (or of a ROW field) in order. */
typedef struct PgiReader {
    const uint8_t *pos;
    const uint8_t *end;
} PgiReader;

/* A reader over `len` bytes at `data`. */
void pgi_reader_init(PgiReader *r, const void *data, size_t len);

/* The next field: false at the end or when the remaining bytes do not hold a whole field (check
 * pgi_reader_ok to tell the two apart). */
bool pgi_next_field(PgiReader *r, uint16_t *tag, const uint8_t **data, uint32_t *len);

/* Whether the reader stopped exactly at the end (no truncated field). */
bool pgi_reader_ok(const PgiReader *r);

/* Writes a field header for `tag` and `len` bytes into dst[0..PGI_FIELD_HEADER). */
void pgi_put_field_header(uint8_t *dst, uint16_t tag, uint32_t len);

/* Writes a frame header for a body of `body_len` bytes of message `type` into dst[0..PGI_FRAME_HEADER). */
void pgi_put_frame_header(uint8_t *dst, uint8_t type, uint32_t body_len);

/* Reads a frame header: the message type and the body length; false when the length is 0 or the body
 * would exceed PGI_MAX_FRAME. */
bool pgi_get_frame_header(const uint8_t *src, uint8_t *type, uint32_t *body_len);

/* An 8-byte field's value as int64 or double; false when the field is not 8 bytes. */
bool pgi_field_i64(const uint8_t *data, uint32_t len, int64_t *out);
bool pgi_field_f64(const uint8_t *data, uint32_t len, double *out);

#ifdef __cplusplus
}
#endif

#endif /* PG_INFER_PROTOCOL_H */
