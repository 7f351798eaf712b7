/*
 * A minimal connvault plugin in C: one data source, "c_minimal", with a
 * required "host" field. It answers describe and validate; other methods
 * return CONNVAULT_UNIMPLEMENTED. Protobuf is read and written by hand with
 * the two wire types it needs (varint and length-delimited).
 *
 * The server stores the `normalized_config` validate answers, and refuses an
 * answer that breaks the described schema: validate hands back the `host`
 * entry it received, byte for byte, or reports it missing.
 *
 *   cc -shared -fPIC -Wall -Werror -fvisibility=hidden -I include \
 *      -o libconnvault_plugin_c_minimal.so plugins/examples/c-minimal/plugin.c
 */
#include <stdint.h>
#include <string.h>

#include "connvault_plugin.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct {
    uint8_t bytes[512];
    size_t len;
} buffer;

static void put_varint(buffer *b, uint64_t value) {
    do {
        uint8_t byte = value & 0x7f;
        value >>= 7;
        if (value) byte |= 0x80;
        if (b->len < sizeof b->bytes) b->bytes[b->len++] = byte;
    } while (value);
}

/* Field `field` of wire type 2 (length-delimited) holding `len` bytes. */
static void put_bytes(buffer *b, uint32_t field, const void *data, size_t len) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, len);
    if (b->len + len <= sizeof b->bytes) {
        memcpy(b->bytes + b->len, data, len);
        b->len += len;
    }
}

static void put_string(buffer *b, uint32_t field, const char *text) {
    put_bytes(b, field, text, strlen(text));
}

/* Field `field` of wire type 0 (varint). */
static void put_uint(buffer *b, uint32_t field, uint64_t value) {
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, value);
}

/* Reads a varint; 0 on malformed input. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
    *value = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return 1;
    }
    return 0;
}

/*
 * Moves to the next length-delimited field of a message, skipping the others;
 * sets its number and bytes. 0 at the end or on malformed input.
 */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *field,
                      const uint8_t **data, size_t *len) {
    uint64_t tag, n;
    while (*p < end) {
        if (!get_varint(p, end, &tag)) return 0;
        switch (tag & 7) {
        case 0: if (!get_varint(p, end, &n)) return 0; break;
        case 1: if (end - *p < 8) return 0; *p += 8; break;
        case 5: if (end - *p < 4) return 0; *p += 4; break;
        case 2:
            if (!get_varint(p, end, &n) || n > (uint64_t)(end - *p)) return 0;
            *field = (uint32_t)(tag >> 3);
            *data = *p;
            *len = (size_t)n;
            *p += n;
            return 1;
        default: return 0;
        }
    }
    return 0;
}

/* Whether a map entry {1: key, 2: Value} has key "host" and a non-empty string. */
static int is_host_entry(const uint8_t *entry, size_t entry_len) {
    const uint8_t *p = entry, *data, *value = NULL;
    size_t len, value_len = 0;
    uint32_t field;
    int is_host = 0;
    while (next_field(&p, entry + entry_len, &field, &data, &len)) {
        if (field == 1) is_host = len == 4 && memcmp(data, "host", 4) == 0;
        if (field == 2) { value = data; value_len = len; }
    }
    if (!is_host || !value) return 0;
    p = value;
    while (next_field(&p, value + value_len, &field, &data, &len))
        if (field == 1 && len > 0) return 1; /* Value.string_value */
    return 0;
}

static int32_t emit(const connvault_output_sink *sink, const buffer *b) {
    return sink->write(sink->ctx, b->bytes, b->len) == 0 ? CONNVAULT_OK : CONNVAULT_OUTPUT_LIMIT;
}

static int32_t describe(const connvault_output_sink *sink) {
    buffer field = {0}, source = {0}, response = {0};
    put_string(&field, 1, "host");  /* Field.name */
    put_uint(&field, 2, 1);         /* Field.type = FIELD_TYPE_STRING */
    put_uint(&field, 3, 1);         /* Field.required = true */
    put_string(&field, 13, "Host"); /* Field.label */

    put_string(&source, 1, "c_minimal");          /* DataSource.id */
    put_string(&source, 2, "C minimal example");  /* DataSource.display_name */
    put_string(&source, 3, "C_MINIMAL");          /* DataSource.aliases */
    put_bytes(&source, 5, field.bytes, field.len); /* DataSource.fields */

    put_bytes(&response, 3, source.bytes, source.len); /* DescribeResponse.data_sources */
    return emit(sink, &response);
}

/*
 * ValidateRequest.connection (1) -> ConnectionSpec.config (2) entries. A map
 * entry is encoded the same way in ConnectionSpec.config and in
 * ValidateResponse.normalized_config (both field 2), so the host entry is
 * written back as it came: no value is lost or retyped. Entries of fields
 * the schema does not declare are left out.
 */
static int32_t validate(const uint8_t *request, size_t request_len,
                        const connvault_output_sink *sink) {
    const uint8_t *p = request, *end = request + request_len, *spec = NULL, *data;
    size_t len, spec_len = 0;
    uint32_t field;
    while (request && next_field(&p, end, &field, &data, &len))
        if (field == 1) { spec = data; spec_len = len; }
    p = spec;
    while (spec && next_field(&p, spec + spec_len, &field, &data, &len)) {
        if (field != 2 || !is_host_entry(data, len)) continue;
        buffer header = {0};
        put_varint(&header, 2 << 3 | 2); /* ValidateResponse.normalized_config */
        put_varint(&header, len);
        if (emit(sink, &header) != CONNVAULT_OK) return CONNVAULT_OUTPUT_LIMIT;
        return sink->write(sink->ctx, data, len) == 0 ? CONNVAULT_OK : CONNVAULT_OUTPUT_LIMIT;
    }
    buffer violation = {0}, response = {0};
    put_string(&violation, 1, "config.host"); /* FieldViolation.field */
    put_string(&violation, 2, "is required"); /* FieldViolation.description */
    put_bytes(&response, 1, violation.bytes, violation.len); /* ValidateResponse.violations */
    return emit(sink, &response);
}

static int instance_token;

static int32_t plugin_init(const connvault_host_table *host, void **instance_out) {
    if (host && host->size >= sizeof(connvault_host_table) && host->log) {
        static const char message[] = "c-minimal plugin initialised";
        host->log(host->ctx, CONNVAULT_LOG_INFO, (const uint8_t *)message, sizeof message - 1);
    }
    *instance_out = &instance_token;
    return CONNVAULT_OK;
}

static int32_t plugin_call(void *instance, uint32_t method, const uint8_t *request,
                           size_t request_len, const connvault_output_sink *sink) {
    (void)instance;
    switch (method) {
    case CONNVAULT_METHOD_DESCRIBE:
        return describe(sink);
    case CONNVAULT_METHOD_VALIDATE:
        return validate(request, request_len, sink);
    default:
        return CONNVAULT_UNIMPLEMENTED;
    }
}

static void plugin_destroy(void *instance) { (void)instance; }

static const connvault_plugin_descriptor descriptor = {
    .magic = CONNVAULT_PLUGIN_MAGIC,
    .size = sizeof(connvault_plugin_descriptor),
    .abi_major = CONNVAULT_ABI_MAJOR,
    .abi_minor = CONNVAULT_ABI_MINOR,
    .flags = CONNVAULT_FLAG_THREAD_SAFE,
    .name = "c-minimal",
    .version = "1.0.0",
    .init = plugin_init,
    .call = plugin_call,
    .destroy = plugin_destroy,
};

EXPORT const connvault_plugin_descriptor *connvault_plugin_entry_v1(void) { return &descriptor; }
