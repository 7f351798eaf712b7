//! Server reflection, so grpcurl and other tools need no proto files. It
//! describes the API, gRPC health and `google.rpc` (the error details), so
//! grpcurl prints a BadRequest's field violations as JSON rather than base64.

use tonic_reflection::server::{Builder, Error, v1, v1alpha};

/// Every descriptor set reflection serves.
fn builder() -> Builder<'static> {
    Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// `grpc.reflection.v1.ServerReflection`.
pub fn v1() -> Result<v1::ServerReflectionServer<impl v1::ServerReflection>, Error> {
    builder().build_v1()
}

/// `grpc.reflection.v1alpha.ServerReflection` (what older grpcurl releases ask for).
pub fn v1alpha() -> Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>, Error> {
    builder().build_v1alpha()
}
