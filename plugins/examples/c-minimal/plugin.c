/*
 * A minimal connvault plugin in C: one data source, "c_minimal", with a
 * required "host" field. It answers describe and validate; other methods
 * return CONNVAULT_UNIMPLEMENTED. Protobuf is written by hand with the two
 * wire types it needs (varint and length-delimited).
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
    (void)request;
    (void)request_len;
    switch (method) {
    case CONNVAULT_METHOD_DESCRIBE:
        return describe(sink);
    case CONNVAULT_METHOD_VALIDATE: {
        /* An empty ValidateResponse: no violations. A real plugin decodes the request. */
        buffer empty = {0};
        return emit(sink, &empty);
    }
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
