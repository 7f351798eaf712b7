//! One `isMaster` command over connvault's own socket (OP_MSG), so the test
//! knows the peer speaks MongoDB, and which replica set it is in, before the
//! driver logs in on a connection of its own.

use connvault_plugin_sdk::StageError;
use connvault_plugin_sdk::pb::ErrorCategory;
use mongodb::bson::{Document, doc};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// OP_MSG, the one opcode of current MongoDB servers.
const OP_MSG: i32 = 2013;
/// The largest `isMaster` answer accepted (real ones are about 1 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// What `isMaster` said.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The replica set's name, if the server is in one.
    pub set_name: Option<String>,
    /// The newest wire protocol version the server speaks.
    pub max_wire_version: i32,
}

fn not_mongodb() -> StageError {
    StageError::new(
        ErrorCategory::Protocol,
        "the server did not answer like MongoDB (no OP_MSG reply to isMaster)",
    )
}

/// The OP_MSG bytes of one command document.
pub fn op_msg(request_id: i32, command: &Document) -> Result<Vec<u8>, StageError> {
    let mut body = Vec::new();
    command
        .to_writer(&mut body)
        .map_err(|_| StageError::new(ErrorCategory::Internal, "could not encode isMaster"))?;
    let length = 16 + 4 + 1 + body.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&(length as i32).to_le_bytes());
    message.extend_from_slice(&request_id.to_le_bytes());
    message.extend_from_slice(&0i32.to_le_bytes());
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&0u32.to_le_bytes()); // flag bits
    message.push(0); // section kind 0: the body
    message.extend_from_slice(&body);
    Ok(message)
}

/// Sends `isMaster` and reads the answer.
pub async fn is_master<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Hello, StageError> {
    let broken = |_| {
        StageError::new(
            ErrorCategory::Unreachable,
            "the server closed the connection before answering isMaster",
        )
    };
    let request = op_msg(1, &doc! { "isMaster": 1, "$db": "admin" })?;
    stream.write_all(&request).await.map_err(broken)?;
    stream.flush().await.map_err(broken)?;
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).await.map_err(broken)?;
    let length = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let opcode = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let length = usize::try_from(length).map_err(|_| not_mongodb())?;
    if opcode != OP_MSG || !(16 + 5..=MAX_ANSWER).contains(&length) {
        return Err(not_mongodb());
    }
    let mut body = vec![0u8; length - 16];
    stream.read_exact(&mut body).await.map_err(broken)?;
    parse_reply(&body)
}

/// Reads an OP_MSG reply body: flag bits, a kind-0 section, the document.
pub fn parse_reply(body: &[u8]) -> Result<Hello, StageError> {
    if body.get(4) != Some(&0) {
        return Err(not_mongodb());
    }
    let document = Document::from_reader(&body[5..]).map_err(|_| not_mongodb())?;
    let ok = match document.get("ok") {
        Some(mongodb::bson::Bson::Double(ok)) => *ok == 1.0,
        Some(mongodb::bson::Bson::Int32(ok)) => *ok == 1,
        Some(mongodb::bson::Bson::Int64(ok)) => *ok == 1,
        _ => false,
    };
    let max_wire_version = document
        .get_i32("maxWireVersion")
        .map_err(|_| not_mongodb())?;
    if !ok {
        return Err(not_mongodb());
    }
    Ok(Hello {
        set_name: document.get_str("setName").ok().map(str::to_owned),
        max_wire_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_parses_and_garbage_does_not() {
        let reply = op_msg(
            2,
            &doc! { "ok": 1.0, "maxWireVersion": 21, "setName": "rs0" },
        )
        .unwrap();
        let hello = parse_reply(&reply[16..]).unwrap();
        assert_eq!(
            hello,
            Hello {
                set_name: Some("rs0".into()),
                max_wire_version: 21
            }
        );
        let refused = op_msg(2, &doc! { "ok": 0.0, "maxWireVersion": 21 }).unwrap();
        assert!(parse_reply(&refused[16..]).is_err());
        assert!(parse_reply(b"HTTP/1.1 400 Bad Request").is_err());
    }
}
