//! The TDS steps before login, done here rather than in tiberius: the
//! pre-login exchange, the TLS handshake carried in pre-login packets, and a
//! shim that lets tiberius log in over the stream that handshake produced.
//!
//! SQL Server (TDS 7.x) negotiates TLS in-band: the client and server swap
//! PRELOGIN messages, then run the TLS handshake inside TDS packets of type
//! PRELOGIN, then carry TDS over the TLS stream. Doing this here makes TLS a
//! stage of its own with the shared rustls configuration (`ring`, the same
//! `verify-ca`/`verify-full` rules as every provider) instead of tiberius's
//! TLS backends. tiberius, built without a TLS backend, then sends its own
//! PRELOGIN: [`Replay`] answers it with the server's real answer and passes
//! everything after it through the encrypted stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes in a TDS packet header.
pub const HEADER: usize = 8;
/// Packet type of a PRELOGIN message (and of TLS handshake packets).
pub const PRELOGIN: u8 = 0x12;
/// Packet type of a server's answer (tabular result).
pub const REPLY: u8 = 0x04;
/// Status bit of the last packet of a message.
pub const END_OF_MESSAGE: u8 = 0x01;
/// The longest pre-login answer accepted; real ones are under 100 bytes.
const MAX_ANSWER: usize = 4096;
/// The most a driver's own PRELOGIN may take before it is answered.
const MAX_DRIVER_PRELOGIN: usize = 4096;

/// PRELOGIN option tokens (MS-TDS 2.2.6.5).
const VERSION: u8 = 0x00;
const ENCRYPTION: u8 = 0x01;
const INSTOPT: u8 = 0x02;
const THREADID: u8 = 0x03;
const MARS: u8 = 0x04;
const TERMINATOR: u8 = 0xff;

/// The ENCRYPTION option's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Encrypt the login only.
    Off = 0x00,
    /// Encrypt everything.
    On = 0x01,
    /// No TLS at all.
    NotSupported = 0x02,
    /// The server insists on encryption.
    Required = 0x03,
}

impl Encryption {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x00 => Some(Self::Off),
            0x01 => Some(Self::On),
            0x02 => Some(Self::NotSupported),
            0x03 => Some(Self::Required),
            _ => None,
        }
    }
}

/// Why a pre-login exchange failed.
#[derive(Debug)]
pub enum PreloginError {
    /// The socket failed or closed.
    Io(io::Error),
    /// The peer answered something that is not a TDS pre-login answer.
    NotTds,
}

/// The server's pre-login answer: what it said, and the bytes to replay to tiberius.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The server's encryption setting.
    pub encryption: Encryption,
    /// `major.minor.build` of the server, from the VERSION option.
    pub version: String,
    /// Whether the server said the instance name did not match (INSTOPT).
    pub wrong_instance: bool,
    /// The whole answer packet, header included.
    pub packet: Vec<u8>,
}

/// A PRELOGIN packet asking for `encryption`, naming `instance` (may be empty).
pub fn prelogin_packet(encryption: Encryption, instance: &str) -> Vec<u8> {
    let mut options: Vec<(u8, Vec<u8>)> = vec![
        // Client version 0.0.0.0, sub-build 0: informational only.
        (VERSION, vec![0; 6]),
        (ENCRYPTION, vec![encryption as u8]),
    ];
    let mut name = instance.as_bytes().to_vec();
    name.push(0);
    options.push((INSTOPT, name));
    options.push((THREADID, vec![0; 4]));
    options.push((MARS, vec![0]));
    let table_len = options.len() * 5 + 1;
    let mut table = Vec::with_capacity(table_len);
    let mut data = Vec::new();
    for (token, value) in &options {
        let offset = table_len + data.len();
        table.push(*token);
        table.extend_from_slice(&(offset as u16).to_be_bytes());
        table.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    table.push(TERMINATOR);
    table.extend_from_slice(&data);
    packet(PRELOGIN, &table)
}

/// One TDS packet of `kind` holding `payload`, marked as the end of its message.
pub fn packet(kind: u8, payload: &[u8]) -> Vec<u8> {
    let length = (HEADER + payload.len()) as u16;
    let mut bytes = vec![kind, END_OF_MESSAGE];
    bytes.extend_from_slice(&length.to_be_bytes());
    // SPID 0, packet id 1, window 0.
    bytes.extend_from_slice(&[0, 0, 1, 0]);
    bytes.extend_from_slice(payload);
    bytes
}

/// Sends a PRELOGIN asking for `encryption` and reads the server's answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    encryption: Encryption,
    instance: &str,
) -> Result<Answer, PreloginError> {
    stream
        .write_all(&prelogin_packet(encryption, instance))
        .await
        .map_err(PreloginError::Io)?;
    stream.flush().await.map_err(PreloginError::Io)?;
    let mut header = [0u8; HEADER];
    stream
        .read_exact(&mut header)
        .await
        .map_err(PreloginError::Io)?;
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header[0] != REPLY
        || header[1] & END_OF_MESSAGE == 0
        || !(HEADER..=MAX_ANSWER).contains(&length)
    {
        return Err(PreloginError::NotTds);
    }
    let mut packet = header.to_vec();
    packet.resize(length, 0);
    stream
        .read_exact(&mut packet[HEADER..])
        .await
        .map_err(PreloginError::Io)?;
    parse_answer(packet).ok_or(PreloginError::NotTds)
}

/// Reads the options of a pre-login answer; `None` if they do not hold together.
fn parse_answer(packet: Vec<u8>) -> Option<Answer> {
    let payload = &packet[HEADER..];
    let mut encryption = None;
    let mut version = None;
    let mut wrong_instance = false;
    let mut at = 0;
    loop {
        let token = *payload.get(at)?;
        if token == TERMINATOR {
            break;
        }
        let entry = payload.get(at + 1..at + 5)?;
        let offset = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
        let length = usize::from(u16::from_be_bytes([entry[2], entry[3]]));
        let value = payload.get(offset..offset.checked_add(length)?)?;
        match token {
            ENCRYPTION => encryption = Some(Encryption::from_byte(*value.first()?)?),
            VERSION if value.len() >= 4 => {
                let build = u16::from_be_bytes([value[2], value[3]]);
                version = Some(format!("{}.{}.{build}", value[0], value[1]));
            }
            INSTOPT => wrong_instance = value.first().is_some_and(|byte| *byte != 0),
            _ => {}
        }
        at += 5;
    }
    Some(Answer {
        encryption: encryption?,
        version: version.unwrap_or_default(),
        wrong_instance,
        packet,
    })
}

/// Carries the TLS handshake in PRELOGIN packets, then gets out of the way.
///
/// During the handshake rustls's writes are collected and sent as one TDS
/// packet on flush, and the TDS headers of what the server sends are
/// stripped before rustls sees it. After [`Framing::handshake_done`] bytes
/// pass through untouched: TDS 7.x runs TLS records directly over TCP.
#[derive(Debug)]
pub struct Framing<S> {
    inner: S,
    handshaking: bool,
    /// A packet being written: header space, then rustls's bytes.
    outgoing: Vec<u8>,
    /// How much of `outgoing` was sent, once a flush began.
    sent: usize,
    header: [u8; HEADER],
    header_read: usize,
    /// Payload bytes left in the packet being read.
    remaining: usize,
}

impl<S> Framing<S> {
    /// Wraps `inner` for the handshake.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            handshaking: true,
            outgoing: vec![0; HEADER],
            sent: 0,
            header: [0; HEADER],
            header_read: 0,
            remaining: 0,
        }
    }

    /// From now on, bytes pass through unframed.
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl<S: AsyncRead + Unpin> AsyncRead for Framing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.handshaking {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.remaining == 0 {
            while this.header_read < HEADER {
                let mut header = ReadBuf::new(&mut this.header[this.header_read..]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut header))?;
                let read = header.filled().len();
                if read == 0 {
                    // End of stream: rustls reports the unfinished handshake.
                    return Poll::Ready(Ok(()));
                }
                this.header_read += read;
            }
            this.header_read = 0;
            let length = usize::from(u16::from_be_bytes([this.header[2], this.header[3]]));
            if this.header[0] != PRELOGIN || length < HEADER {
                return Poll::Ready(Err(invalid(
                    "the server sent something else than a TLS handshake packet",
                )));
            }
            this.remaining = length - HEADER;
        }
        let room = buf.remaining().min(this.remaining);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let read = limited.filled().len();
        buf.advance(read);
        this.remaining -= read;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.handshaking {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.outgoing.len() + buf.len() > usize::from(u16::MAX) {
            return Poll::Ready(Err(invalid(
                "a TLS handshake flight does not fit a TDS packet",
            )));
        }
        this.outgoing.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.outgoing.len() > HEADER {
            if this.sent == 0 {
                let length = (this.outgoing.len() as u16).to_be_bytes();
                this.outgoing[..HEADER].copy_from_slice(&[
                    PRELOGIN,
                    END_OF_MESSAGE,
                    length[0],
                    length[1],
                    0,
                    0,
                    1,
                    0,
                ]);
            }
            while this.sent < this.outgoing.len() {
                let written =
                    ready!(Pin::new(&mut this.inner).poll_write(cx, &this.outgoing[this.sent..]))?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                this.sent += written;
            }
            this.outgoing.truncate(HEADER);
            this.sent = 0;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What [`Replay`] is doing.
#[derive(Debug)]
enum Phase {
    /// Collecting the driver's PRELOGIN, which is never sent.
    Swallow(Vec<u8>),
    /// Handing the driver the server's answer, from this offset.
    Replay(usize),
    /// Passing bytes both ways.
    Pass,
}

/// The stream tiberius logs in over: it answers tiberius's PRELOGIN with the
/// answer the server already gave, then passes everything through.
#[derive(Debug)]
pub struct Replay<S> {
    inner: S,
    answer: Vec<u8>,
    phase: Phase,
}

impl<S> Replay<S> {
    /// `inner` is past the pre-login exchange (and TLS, if any); `answer` is
    /// the server's pre-login answer packet.
    pub fn new(inner: S, answer: Vec<u8>) -> Self {
        Self {
            inner,
            answer,
            phase: Phase::Swallow(Vec::new()),
        }
    }
}

/// Whether `bytes` hold whole TDS packets up to one that ends a message.
fn ends_a_message(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if length < HEADER || at + length > bytes.len() {
            return false;
        }
        if bytes[at + 1] & END_OF_MESSAGE != 0 {
            return at + length == bytes.len();
        }
        at += length;
    }
    false
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Swallow(sent) => {
                    if !ends_a_message(sent) {
                        return Poll::Ready(Err(invalid(
                            "the driver read before it finished its pre-login message",
                        )));
                    }
                    this.phase = Phase::Replay(0);
                }
                Phase::Replay(at) => {
                    let rest = &this.answer[*at..];
                    if rest.is_empty() {
                        this.phase = Phase::Pass;
                        continue;
                    }
                    let take = rest.len().min(buf.remaining());
                    buf.put_slice(&rest[..take]);
                    *at += take;
                    if *at == this.answer.len() {
                        this.phase = Phase::Pass;
                    }
                    return Poll::Ready(Ok(()));
                }
                Phase::Pass => return Pin::new(&mut this.inner).poll_read(cx, buf),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.phase {
            Phase::Swallow(sent) => {
                if sent.len() + buf.len() > MAX_DRIVER_PRELOGIN || ends_a_message(sent) {
                    return Poll::Ready(Err(invalid(
                        "the driver sent more than one pre-login message",
                    )));
                }
                sent.extend_from_slice(buf);
                Poll::Ready(Ok(buf.len()))
            }
            Phase::Replay(_) => Poll::Ready(Err(invalid(
                "the driver wrote before it read the pre-login answer",
            ))),
            Phase::Pass => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Pass => Pin::new(&mut this.inner).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prelogin_packet_parses_back_as_an_answer() {
        let mut request = prelogin_packet(Encryption::On, "SALES");
        // Turn the request into a reply to read it with the answer parser.
        request[0] = REPLY;
        let answer = parse_answer(request).unwrap();
        assert_eq!(answer.encryption, Encryption::On);
        assert_eq!(answer.version, "0.0.0");
        // The instance name's first byte is not 0: "the instance did not match".
        assert!(answer.wrong_instance);
    }

    #[test]
    fn broken_answers_are_refused() {
        let good = packet(REPLY, &[ENCRYPTION, 0, 6, 0, 1, TERMINATOR, 0x01]);
        assert_eq!(parse_answer(good).unwrap().encryption, Encryption::On);
        for payload in [
            vec![ENCRYPTION, 0, 60, 0, 1, TERMINATOR],
            vec![ENCRYPTION, 0, 6, 0, 1],
            vec![VERSION, 0, 6, 0, 0, TERMINATOR],
            vec![ENCRYPTION, 0, 6, 0, 1, TERMINATOR, 0x09],
        ] {
            assert!(
                parse_answer(packet(REPLY, &payload)).is_none(),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn a_message_ends_with_its_last_packet() {
        let mut first = packet(PRELOGIN, &[1, 2, 3]);
        first[1] = 0;
        let last = packet(PRELOGIN, &[4]);
        let both = [first.clone(), last].concat();
        assert!(!ends_a_message(&first));
        assert!(ends_a_message(&both));
        assert!(!ends_a_message(&both[..both.len() - 1]));
    }
}
