//! The frames host and runner exchange over their socket pair.
//!
//! Every frame is a little-endian `u32` length, then that many bytes: a kind
//! byte and the kind's body. The setup and the runner's ready report are
//! small protobuf messages; calls, replies and log lines have fixed headers
//! followed by raw bytes, so the hot path copies each payload once. A reader
//! refuses a frame over its bound before allocating for it, and every field
//! is checked on decoding: the host treats a runner as untrusted, since the
//! plugin in it may have taken it over.

use std::io::{self, Read, Write};

/// Host to runner: how to load and confine (a [`Setup`]).
const SETUP: u8 = 1;
/// Runner to host: loaded and confined, or why not (a [`Ready`]).
const READY: u8 = 2;
/// Host to runner: one call.
const CALL: u8 = 3;
/// Runner to host: one call's answer.
const REPLY: u8 = 4;
/// Runner to host: a line the plugin logged.
const LOG: u8 = 5;

/// The longest log message a frame carries; a longer one is cut.
pub(crate) const MAX_LOG_MESSAGE: usize = 4096;

/// Bytes in a frame besides a call's request or a reply's output.
pub(crate) const HEADER_ROOM: usize = 64;

/// How a runner is to load and confine its plugin.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Setup {
    /// The plugin's file name (names the memfd and the log lines).
    #[prost(string, tag = "1")]
    pub(crate) file_name: String,
    /// The SHA-256 the host verified; the runner checks the bytes it got.
    #[prost(string, tag = "2")]
    pub(crate) sha256: String,
    /// Threads serving calls (the lane's workers).
    #[prost(uint32, tag = "3")]
    pub(crate) workers: u32,
    /// How long `init` may take, in milliseconds.
    #[prost(uint64, tag = "4")]
    pub(crate) load_timeout_ms: u64,
    /// `RLIMIT_AS` in bytes; 0: none.
    #[prost(uint64, tag = "5")]
    pub(crate) memory_bytes: u64,
    /// `RLIMIT_NOFILE`; 0: none.
    #[prost(uint64, tag = "6")]
    pub(crate) open_files: u64,
    /// `RLIMIT_CPU` in seconds; 0: none.
    #[prost(uint64, tag = "7")]
    pub(crate) cpu_secs: u64,
    /// Paths the runner may read besides the system's.
    #[prost(string, repeated, tag = "8")]
    pub(crate) read_paths: Vec<String>,
    /// The lane the runner serves ("pure" or "io"), for its thread names.
    #[prost(string, tag = "9")]
    pub(crate) lane: String,
}

/// A runner's report once it is confined and its plugin loaded (or not).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Ready {
    /// Why the runner could not load or confine the plugin; empty when it did.
    #[prost(string, tag = "1")]
    pub(crate) error: String,
    /// The plugin's name from its descriptor.
    #[prost(string, tag = "2")]
    pub(crate) name: String,
    /// The plugin's version from its descriptor.
    #[prost(string, tag = "3")]
    pub(crate) version: String,
    /// Whether the plugin says it is thread-safe.
    #[prost(bool, tag = "4")]
    pub(crate) thread_safe: bool,
    /// How Landlock was applied: "enforced (ABI n)", "partially enforced
    /// (ABI n)" or "not supported by this kernel".
    #[prost(string, tag = "5")]
    pub(crate) landlock: String,
    /// Whether the seccomp filter is installed.
    #[prost(bool, tag = "6")]
    pub(crate) seccomp: bool,
    /// Whether `no_new_privs` is set.
    #[prost(bool, tag = "7")]
    pub(crate) no_new_privs: bool,
}

/// One frame, decoded.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// How to load and confine.
    Setup(Setup),
    /// Loaded (or not).
    Ready(Ready),
    /// A call: its id, method, output limit, milliseconds left and request.
    Call {
        /// Chosen by the host, echoed in the reply.
        id: u64,
        /// The method id.
        method: u32,
        /// The most output bytes the host accepts.
        limit: u32,
        /// Milliseconds until the caller gives up.
        deadline_ms: u32,
        /// The encoded request.
        request: Vec<u8>,
    },
    /// A call's answer.
    Reply {
        /// The call's id.
        id: u64,
        /// The plugin's return code.
        code: i32,
        /// Whether the plugin wrote more than the limit.
        overflowed: bool,
        /// What it wrote.
        output: Vec<u8>,
    },
    /// A log line of the plugin.
    Log {
        /// The ABI log level.
        level: u32,
        /// The message, at most [`MAX_LOG_MESSAGE`] bytes.
        message: Vec<u8>,
    },
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum WireError {
    /// The length prefix is over the reader's bound.
    #[error("a frame of {len} bytes is over the {max}-byte bound")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The kind byte is unknown, or the frame is empty.
    #[error("a frame of unknown kind {0}")]
    UnknownKind(u8),
    /// The body is shorter than its kind's header, or does not decode.
    #[error("a malformed {0} frame")]
    Malformed(&'static str),
}

impl Frame {
    /// The frame as written on the socket: length prefix included.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; 4];
        match self {
            Frame::Setup(setup) => {
                out.push(SETUP);
                prost::Message::encode(setup, &mut out).unwrap_or_default();
            }
            Frame::Ready(ready) => {
                out.push(READY);
                prost::Message::encode(ready, &mut out).unwrap_or_default();
            }
            Frame::Call {
                id,
                method,
                limit,
                deadline_ms,
                request,
            } => {
                out.reserve(21 + request.len());
                out.push(CALL);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&method.to_le_bytes());
                out.extend_from_slice(&limit.to_le_bytes());
                out.extend_from_slice(&deadline_ms.to_le_bytes());
                out.extend_from_slice(request);
            }
            Frame::Reply {
                id,
                code,
                overflowed,
                output,
            } => {
                out.reserve(14 + output.len());
                out.push(REPLY);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&code.to_le_bytes());
                out.push(u8::from(*overflowed));
                out.extend_from_slice(output);
            }
            Frame::Log { level, message } => {
                let message = &message[..message.len().min(MAX_LOG_MESSAGE)];
                out.push(LOG);
                out.extend_from_slice(&level.to_le_bytes());
                out.extend_from_slice(message);
            }
        }
        let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
        out[..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Decodes a frame's bytes (after the length prefix).
    pub(crate) fn decode(mut body: Vec<u8>) -> Result<Frame, WireError> {
        let Some(&kind) = body.first() else {
            return Err(WireError::UnknownKind(0));
        };
        let rest = &body[1..];
        match kind {
            SETUP => prost::Message::decode(rest)
                .map(Frame::Setup)
                .map_err(|_| WireError::Malformed("setup")),
            READY => prost::Message::decode(rest)
                .map(Frame::Ready)
                .map_err(|_| WireError::Malformed("ready")),
            CALL => {
                let (id, method, limit, deadline_ms) = (
                    le_u64(rest, 0),
                    le_u32(rest, 8),
                    le_u32(rest, 12),
                    le_u32(rest, 16),
                );
                let (Some(id), Some(method), Some(limit), Some(deadline_ms)) =
                    (id, method, limit, deadline_ms)
                else {
                    return Err(WireError::Malformed("call"));
                };
                body.drain(..21);
                Ok(Frame::Call {
                    id,
                    method,
                    limit,
                    deadline_ms,
                    request: body,
                })
            }
            REPLY => {
                let (Some(id), Some(code), Some(&overflowed)) =
                    (le_u64(rest, 0), le_u32(rest, 8), rest.get(12))
                else {
                    return Err(WireError::Malformed("reply"));
                };
                if overflowed > 1 {
                    return Err(WireError::Malformed("reply"));
                }
                body.drain(..14);
                Ok(Frame::Reply {
                    id,
                    code: code as i32,
                    overflowed: overflowed == 1,
                    output: body,
                })
            }
            LOG => {
                let Some(level) = le_u32(rest, 0) else {
                    return Err(WireError::Malformed("log"));
                };
                body.drain(..5);
                body.truncate(MAX_LOG_MESSAGE);
                Ok(Frame::Log {
                    level,
                    message: body,
                })
            }
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

/// Reads one frame of at most `max` bytes; `Ok(None)` at a clean end of stream.
pub(crate) fn read_frame(reader: &mut impl Read, max: usize) -> io::Result<Option<Frame>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            WireError::TooLong { len, max },
        ));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Frame::decode(body)
        .map(Some)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Writes one frame whole.
pub(crate) fn write_frame(writer: &mut impl Write, frame: &Frame) -> io::Result<()> {
    writer.write_all(&frame.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let bytes = frame.encode();
        let decoded = read_frame(&mut bytes.as_slice(), 1 << 20).unwrap().unwrap();
        assert_eq!(decoded, frame);
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Frame::Setup(Setup {
            file_name: "libconnvault_plugin_x.so".into(),
            workers: 4,
            read_paths: vec!["/opt/x".into()],
            ..Setup::default()
        }));
        round_trip(Frame::Ready(Ready {
            name: "x".into(),
            thread_safe: true,
            ..Ready::default()
        }));
        round_trip(Frame::Call {
            id: u64::MAX,
            method: 2,
            limit: 4096,
            deadline_ms: 2000,
            request: b"request".to_vec(),
        });
        round_trip(Frame::Reply {
            id: 7,
            code: -3,
            overflowed: true,
            output: Vec::new(),
        });
        round_trip(Frame::Log {
            level: 3,
            message: b"hello".to_vec(),
        });
    }

    #[test]
    fn a_frame_over_the_bound_is_refused_before_it_is_read() {
        let mut bytes = Frame::Log {
            level: 1,
            message: vec![b'x'; 100],
        }
        .encode();
        let error = read_frame(&mut bytes.as_slice(), 50).unwrap_err();
        assert!(
            error.to_string().contains("over the 50-byte bound"),
            "{error}"
        );
        // A length prefix alone announcing 4 GiB allocates nothing.
        bytes = u32::MAX.to_le_bytes().to_vec();
        assert!(read_frame(&mut bytes.as_slice(), 1 << 20).is_err());
    }

    #[test]
    fn short_unknown_and_bad_frames_are_refused() {
        for body in [
            vec![],
            vec![99],
            vec![CALL, 1, 2, 3],
            vec![REPLY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            vec![LOG, 1],
            vec![READY, 0xff, 0xff],
        ] {
            assert!(Frame::decode(body.clone()).is_err(), "{body:?}");
        }
        let long =
            Frame::decode([vec![LOG, 3, 0, 0, 0], vec![b'a'; MAX_LOG_MESSAGE + 10]].concat())
                .unwrap();
        assert!(matches!(long, Frame::Log { message, .. } if message.len() == MAX_LOG_MESSAGE));
    }

    #[test]
    fn a_truncated_stream_is_an_error_and_an_empty_one_the_end() {
        assert!(read_frame(&mut [].as_slice(), 100).unwrap().is_none());
        let bytes = Frame::Log {
            level: 1,
            message: b"hello".to_vec(),
        }
        .encode();
        assert!(read_frame(&mut &bytes[..bytes.len() - 1], 100).is_err());
    }
}
