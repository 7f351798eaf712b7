/*
 * connvault plugin ABI, major version 1.
 *
 * A plugin is a shared library exporting one function,
 *     const connvault_plugin_descriptor *connvault_plugin_entry_v1(void);
 * returning a pointer to a static descriptor. Requests and responses are
 * protobuf messages from proto/connvault/plugin/v1/plugin.proto, passed as
 * bytes. See docs/plugins.md. This header mirrors crates/abi/src/lib.rs; a
 * test compiles it and checks every size and offset against the Rust side.
 */
#ifndef CONNVAULT_PLUGIN_H
#define CONNVAULT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CONNVAULT_PLUGIN_MAGIC 0x3147554C50564E43ULL /* "CNVPLUG1" little-endian */
#define CONNVAULT_ABI_MAJOR 1u
#define CONNVAULT_ABI_MINOR 1u
#define CONNVAULT_ENTRY_SYMBOL "connvault_plugin_entry_v1"

#define CONNVAULT_FLAG_THREAD_SAFE 1u

/* Return codes of init and call. */
#define CONNVAULT_OK 0
#define CONNVAULT_APP_ERROR 1     /* output holds a connvault.plugin.v1.Error */
#define CONNVAULT_UNIMPLEMENTED 2
#define CONNVAULT_BAD_REQUEST 3
#define CONNVAULT_PANIC 4
#define CONNVAULT_INTERNAL 5
#define CONNVAULT_OUTPUT_LIMIT 6

/* Method ids. */
#define CONNVAULT_METHOD_DESCRIBE 1u
#define CONNVAULT_METHOD_VALIDATE 2u
#define CONNVAULT_METHOD_TEST 3u
#define CONNVAULT_METHOD_DISCOVER 4u
#define CONNVAULT_METHOD_RENDER 5u

/* Log levels. */
#define CONNVAULT_LOG_ERROR 1u
#define CONNVAULT_LOG_WARN 2u
#define CONNVAULT_LOG_INFO 3u
#define CONNVAULT_LOG_DEBUG 4u
#define CONNVAULT_LOG_TRACE 5u

typedef struct connvault_host_table {
    uint32_t size;      /* sizeof(connvault_host_table) as the host was built */
    uint32_t abi_minor;
    void *ctx;
    void (*log)(void *ctx, uint32_t level, const uint8_t *message, size_t len); /* may be NULL */
} connvault_host_table;

typedef struct connvault_output_sink {
    void *ctx;
    /* Appends bytes to a host-owned buffer; non-zero once the host's cap is exceeded. */
    int32_t (*write)(void *ctx, const uint8_t *bytes, size_t len);
} connvault_output_sink;

typedef struct connvault_plugin_descriptor {
    uint64_t magic;     /* CONNVAULT_PLUGIN_MAGIC */
    uint32_t size;      /* sizeof(connvault_plugin_descriptor) */
    uint32_t abi_major; /* CONNVAULT_ABI_MAJOR */
    uint32_t abi_minor; /* CONNVAULT_ABI_MINOR */
    uint32_t flags;     /* CONNVAULT_FLAG_* */
    const char *name;   /* NUL-terminated UTF-8 */
    const char *version;
    int32_t (*init)(const connvault_host_table *host, void **instance_out);
    int32_t (*call)(void *instance, uint32_t method, const uint8_t *request,
                    size_t request_len, const connvault_output_sink *sink);
    void (*destroy)(void *instance);
} connvault_plugin_descriptor;

#ifdef __cplusplus
}
#endif

#endif /* CONNVAULT_PLUGIN_H */
