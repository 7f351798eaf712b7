//! The wall clock as the API records it: protobuf timestamps.

/// The current wall-clock time as a protobuf timestamp (create, update, test
/// and fetch times, audit events).
pub fn timestamp_now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}
