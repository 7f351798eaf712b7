//! Checks the gRPC framing of request bodies as they stream in, so a body
//! that ends inside a message, carries no message, or sets a compression
//! flag it may not, is INVALID_ARGUMENT: tonic answers these INTERNAL, which
//! reads as a server bug and hides a client's. A message whose length prefix
//! is over the configured maximum is RESOURCE_EXHAUSTED (the gRPC spec's
//! code; tonic's own check says OUT_OF_RANGE) before any of it is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};

/// Wraps every request body in a [`FramingCheck`].
#[derive(Debug, Clone, Copy)]
pub struct FramingLayer {
    max_message: usize,
}

impl FramingLayer {
    /// A layer refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self { max_message }
    }
}

impl<S> Layer<S> for FramingLayer {
    type Service = FramingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FramingService {
            inner,
            max_message: self.max_message,
        }
    }
}

/// The service [`FramingLayer`] wraps around.
#[derive(Debug, Clone)]
pub struct FramingService<S> {
    inner: S,
    max_message: usize,
}

impl<S, B> Service<http::Request<B>> for FramingService<S>
where
    S: Service<http::Request<Body>>,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let compressed = request.headers().contains_key("grpc-encoding");
        let max_message = self.max_message;
        let request = request.map(|body| {
            Body::new(FramingCheck {
                inner: body,
                compressed,
                max_message,
                header: [0; 5],
                header_len: 0,
                body_left: 0,
                messages: 0,
                done: false,
            })
        });
        self.inner.call(request)
    }
}

/// A request body passed through while its gRPC frames (a flag byte, a
/// four-byte length, the message) are counted.
pub struct FramingCheck<B> {
    inner: B,
    compressed: bool,
    max_message: usize,
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    messages: usize,
    done: bool,
}

impl<B> FramingCheck<B> {
    /// Follows the frames through `chunk`.
    fn follow(&mut self, chunk: &[u8]) -> Result<(), Status> {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.body_left > 0 {
                let take = self.body_left.min(rest.len());
                self.body_left -= take;
                rest = &rest[take..];
                continue;
            }
            self.header[self.header_len] = rest[0];
            self.header_len += 1;
            rest = &rest[1..];
            if self.header_len == self.header.len() {
                match self.header[0] {
                    0 => {}
                    1 if self.compressed => {}
                    _ => {
                        return Err(Status::invalid_argument(
                            "malformed gRPC frame: bad compression flag",
                        ));
                    }
                }
                let [_, a, b, c, d] = self.header;
                self.body_left = u32::from_be_bytes([a, b, c, d]) as usize;
                if self.body_left > self.max_message {
                    return Err(Status::resource_exhausted(format!(
                        "the request message is {} bytes; the most this server accepts is {}",
                        self.body_left, self.max_message
                    )));
                }
                self.header_len = 0;
                self.messages += 1;
            }
        }
        Ok(())
    }

    /// Whether the body ended where it may: after at least one whole message.
    fn ended(&self) -> Result<(), Status> {
        if self.header_len > 0 || self.body_left > 0 {
            Err(Status::invalid_argument("truncated message"))
        } else if self.messages == 0 {
            Err(Status::invalid_argument("no request message"))
        } else {
            Ok(())
        }
    }
}

impl<B> http_body::Body for FramingCheck<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let checked = match polled {
            Some(Ok(frame)) => match frame.data_ref().cloned() {
                Some(data) => self.follow(&data).map(|()| Some(frame)),
                None => Ok(Some(frame)),
            },
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => self.ended().map(|()| None),
        };
        match checked {
            Ok(frame) => Poll::Ready(frame.map(Ok)),
            Err(status) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(status))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(max_message: usize) -> FramingCheck<()> {
        FramingCheck {
            inner: (),
            compressed: false,
            max_message,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
            messages: 0,
            done: false,
        }
    }

    #[test]
    fn a_message_over_the_maximum_is_refused_by_its_length_prefix() {
        let mut framing = check(10);
        framing.follow(&[0, 0, 0, 0, 10]).expect("at the maximum");
        framing.follow(&[7; 10]).expect("its body");
        // Only the prefix arrived: the refusal comes before any body is read.
        let refused = framing.follow(&[0, 0, 0, 0, 11]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("11 bytes"),
            "{}",
            refused.message()
        );
        let refused = check(10).follow(&[0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    }
}
