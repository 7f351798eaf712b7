//! The protobuf codec of the public API: prost's, except that a message that
//! does not decode is the caller's fault (INVALID_ARGUMENT), not the
//! server's (prost's codec answers INTERNAL).

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::error::MAX_MESSAGE_BYTES;
use crate::text::clip_owned;

/// The codec `build.rs` names for every generated service and client.
#[derive(Debug, Clone, Default)]
pub struct ApiCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for ApiCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ApiDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ApiDecoder(self.0.decoder())
    }
}

/// Prost's decoder with its errors answered as INVALID_ARGUMENT.
#[derive(Debug, Clone, Default)]
pub struct ApiDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ApiDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            let message = format!("malformed message: {}", status.message());
            Status::invalid_argument(clip_owned(message, MAX_MESSAGE_BYTES))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
