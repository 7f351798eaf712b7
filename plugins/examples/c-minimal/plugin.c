/*
 * A minimal connvault plugin in C, on protobuf-c's generated code for
 * plugin.proto: one data source, "c_minimal", with a required string "host"
 * and an integer "port" (1-65535, default 5432). It answers describe and
 * validate; other methods return CONNVAULT_UNIMPLEMENTED.
 *
 * The server stores the `normalized_config` validate answers (not the
 * request's config), and refuses an answer that breaks the described
 * schema: validate hands back every entry it received, with the default
 * port added, or reports what is wrong. Answers are packed into a buffer of
 * their exact size, so nothing is ever cut.
 *
 * Build (see the Makefile beside this file, which generates the code):
 *
 *   make -C plugins/examples/c-minimal
 *
 * It links libprotobuf-c (Debian: libprotobuf-c-dev to build,
 * libprotobuf-c1 where the server runs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connvault/plugin/v1/plugin.pb-c.h"
#include "connvault_plugin.h"

#define EXPORT __attribute__((visibility("default")))

/* Shorter names for the generated types. */
typedef Connvault__Plugin__V1__DescribeResponse DescribeResponse;
typedef Connvault__Plugin__V1__DataSource DataSource;
typedef Connvault__Plugin__V1__Field Field;
typedef Connvault__Plugin__V1__ValidateRequest ValidateRequest;
typedef Connvault__Plugin__V1__ValidateResponse ValidateResponse;
typedef Connvault__Plugin__V1__ValidateResponse__NormalizedConfigEntry NormalizedEntry;
typedef Connvault__Plugin__V1__ConnectionSpec__ConfigEntry ConfigEntry;
typedef Connvault__Plugin__V1__FieldViolation FieldViolation;
typedef Connvault__Plugin__V1__Value Value;

#define DEFAULT_PORT 5432
/* More violations than this are not reported one by one. */
#define MAX_VIOLATIONS 16

/* Packs `message` into a buffer of its exact size and hands it to the sink. */
static int32_t send(const ProtobufCMessage *message, const connvault_output_sink *sink,
                    int32_t code) {
    size_t size = protobuf_c_message_get_packed_size(message);
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) return CONNVAULT_INTERNAL;
    size_t packed = protobuf_c_message_pack(message, bytes);
    int32_t written = packed == size ? sink->write(sink->ctx, bytes, size) : -1;
    free(bytes);
    if (packed != size) return CONNVAULT_INTERNAL;
    /* The sink refused the bytes (over the host's cap): say so, never cut. */
    return written == 0 ? code : CONNVAULT_OUTPUT_LIMIT;
}

static int32_t describe(const connvault_output_sink *sink) {
    Field host = CONNVAULT__PLUGIN__V1__FIELD__INIT;
    host.name = "host";
    host.type = CONNVAULT__PLUGIN__V1__FIELD_TYPE__FIELD_TYPE_STRING;
    host.required = 1;
    host.label = "Host";
    host.max_length = 4096;

    Field port = CONNVAULT__PLUGIN__V1__FIELD__INIT;
    port.name = "port";
    port.type = CONNVAULT__PLUGIN__V1__FIELD_TYPE__FIELD_TYPE_INT;
    port.label = "Port";
    port.default_value = "5432";
    port.min = 1;
    port.max = 65535;

    Field *fields[] = {&host, &port};
    DataSource source = CONNVAULT__PLUGIN__V1__DATA_SOURCE__INIT;
    source.id = "c_minimal";
    source.display_name = "C minimal";
    char *aliases[] = {"C_MINIMAL"};
    source.n_aliases = 1;
    source.aliases = aliases;
    source.description = "An example plugin written in C on protobuf-c.";
    source.n_fields = 2;
    source.fields = fields;

    DataSource *sources[] = {&source};
    DescribeResponse response = CONNVAULT__PLUGIN__V1__DESCRIBE_RESPONSE__INIT;
    /* The host replaces name and version with the descriptor's. */
    response.n_data_sources = 1;
    response.data_sources = sources;
    return send(&response.base, sink, CONNVAULT_OK);
}

/* The violations of one validate call, with their texts. */
typedef struct {
    FieldViolation items[MAX_VIOLATIONS];
    FieldViolation *pointers[MAX_VIOLATIONS];
    char texts[MAX_VIOLATIONS][2][160];
    size_t count;
} violations;

static void violate(violations *found, const char *prefix, const char *key,
                    const char *description) {
    if (found->count == MAX_VIOLATIONS) return;
    size_t i = found->count++;
    FieldViolation *v = &found->items[i];
    *v = (FieldViolation)CONNVAULT__PLUGIN__V1__FIELD_VIOLATION__INIT;
    /* A key that is not one of ours is named, not quoted at length. */
    snprintf(found->texts[i][0], sizeof found->texts[i][0], "%s.%.64s", prefix, key);
    snprintf(found->texts[i][1], sizeof found->texts[i][1], "%s", description);
    v->field = found->texts[i][0];
    v->description = found->texts[i][1];
    found->pointers[i] = v;
}

/*
 * What the SDK's check() does for a Rust plugin, by hand: every key must be
 * a field of the schema, of the field's type, within its bounds; required
 * fields must be set; secrets the schema does not declare are refused.
 */
static int32_t validate(const uint8_t *request_bytes, size_t request_len,
                        const connvault_output_sink *sink) {
    ValidateRequest *request =
        connvault__plugin__v1__validate_request__unpack(NULL, request_len, request_bytes);
    if (!request) return CONNVAULT_BAD_REQUEST;
    Connvault__Plugin__V1__ConnectionSpec *spec = request->connection;
    size_t n_config = spec ? spec->n_config : 0;

    violations found = {0};
    int saw_host = 0, has_port = 0;
    for (size_t i = 0; i < n_config; i++) {
        const ConfigEntry *entry = spec->config[i];
        const Value *value = entry->value;
        if (strcmp(entry->key, "host") == 0) {
            saw_host = 1;
            if (!value || value->kind_case != CONNVAULT__PLUGIN__V1__VALUE__KIND_STRING_VALUE)
                violate(&found, "config", "host", "must be a string");
            else if (value->string_value[0] == '\0')
                violate(&found, "config", "host", "is required");
            else if (strlen(value->string_value) > 4096)
                violate(&found, "config", "host", "must be at most 4096 bytes");
        } else if (strcmp(entry->key, "port") == 0) {
            has_port = 1;
            if (!value || value->kind_case != CONNVAULT__PLUGIN__V1__VALUE__KIND_INT_VALUE)
                violate(&found, "config", "port", "must be an integer");
            else if (value->int_value < 1 || value->int_value > 65535)
                violate(&found, "config", "port", "must be between 1 and 65535");
        } else {
            violate(&found, "config", entry->key, "is not a field of c_minimal");
        }
    }
    if (!saw_host) violate(&found, "config", "host", "is required");
    for (size_t i = 0; spec && i < spec->n_secrets; i++)
        violate(&found, "secrets", spec->secrets[i]->key, "c_minimal takes no secrets");

    ValidateResponse response = CONNVAULT__PLUGIN__V1__VALIDATE_RESPONSE__INIT;
    /* Every entry received goes back as it came (the Values are the
     * request's, packed again); the default port is added when absent. */
    NormalizedEntry *entries = calloc(n_config + 1, sizeof *entries);
    NormalizedEntry **pointers = calloc(n_config + 1, sizeof *pointers);
    Value default_port = CONNVAULT__PLUGIN__V1__VALUE__INIT;
    /* It implements neither test nor discover, so it connects nowhere:
     * present and empty targets say so (absent, the host would read the
     * host and port fields as where it connects). */
    Connvault__Plugin__V1__NetworkTargets targets = CONNVAULT__PLUGIN__V1__NETWORK_TARGETS__INIT;
    int32_t code = CONNVAULT_INTERNAL;
    if (entries && pointers) {
        if (found.count > 0) {
            response.n_violations = found.count;
            response.violations = found.pointers;
        } else {
            size_t n = 0;
            for (size_t i = 0; i < n_config; i++, n++) {
                entries[n] = (NormalizedEntry)
                    CONNVAULT__PLUGIN__V1__VALIDATE_RESPONSE__NORMALIZED_CONFIG_ENTRY__INIT;
                entries[n].key = spec->config[i]->key;
                entries[n].value = spec->config[i]->value;
                pointers[n] = &entries[n];
            }
            if (!has_port) {
                default_port.kind_case = CONNVAULT__PLUGIN__V1__VALUE__KIND_INT_VALUE;
                default_port.int_value = DEFAULT_PORT;
                entries[n] = (NormalizedEntry)
                    CONNVAULT__PLUGIN__V1__VALIDATE_RESPONSE__NORMALIZED_CONFIG_ENTRY__INIT;
                entries[n].key = "port";
                entries[n].value = &default_port;
                pointers[n] = &entries[n];
                n++;
            }
            response.n_normalized_config = n;
            response.normalized_config = pointers;
            response.targets = &targets;
        }
        code = send(&response.base, sink, CONNVAULT_OK);
    }
    free(pointers);
    free(entries);
    connvault__plugin__v1__validate_request__free_unpacked(request, NULL);
    return code;
}

static int instance_token;

static int32_t plugin_init(const connvault_host_table *host, void **instance_out) {
    /* Read host-table fields only if the host's table is big enough. */
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
        /* Including methods added by later ABI minors. */
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
    .version = "1.1.0",
    .init = plugin_init,
    .call = plugin_call,
    .destroy = plugin_destroy,
};

EXPORT const connvault_plugin_descriptor *connvault_plugin_entry_v1(void) { return &descriptor; }
