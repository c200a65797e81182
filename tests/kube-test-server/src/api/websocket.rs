//! The server side of WebSocket (RFC 6455), as much as the apiserver's streaming subresources
//! need: the handshake's accept key, and reading and writing messages over an upgraded
//! connection (masked client frames, fragmented messages, ping, close). Extensions (compression)
//! are never negotiated, so none is implemented. kubectl's exec speaks the channel protocols
//! `v5.channel.k8s.io`/`v4.channel.k8s.io` on top of it (`exec`).

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest message this server accepts from a client (kubectl's stdin chunks are 32 KiB).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    let digest = Sha1::digest(format!("{}{GUID}", key.trim()).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_slice())
}

/// One unfragmented frame from the server (servers never mask).
pub(crate) fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A complete message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// A text or binary message (fragments joined).
    Data(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The client closes the connection (or it ended).
    Close,
}

/// Reads a client's messages from an upgraded connection.
pub(crate) struct MessageReader<R> {
    reader: R,
    /// The fragments of a message so far (a control frame may come between them).
    partial: Option<Vec<u8>>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub(crate) fn new(reader: R) -> MessageReader<R> {
        MessageReader { reader, partial: None }
    }

    /// The next message or control frame; protocol errors are `InvalidData`.
    pub(crate) async fn next(&mut self) -> std::io::Result<Message> {
        read_message(&mut self.reader, &mut self.partial).await
    }
}

async fn read_message<R: AsyncRead + Unpin>(reader: &mut R, message: &mut Option<Vec<u8>>) -> std::io::Result<Message> {
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    loop {
        let mut head = [0u8; 2];
        if let Err(error) = reader.read_exact(&mut head).await {
            return if error.kind() == std::io::ErrorKind::UnexpectedEof { Ok(Message::Close) } else { Err(error) };
        }
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0F;
        if head[0] & 0x70 != 0 {
            return Err(invalid("reserved bits set without an extension"));
        }
        if head[1] & 0x80 == 0 {
            return Err(invalid("client frames must be masked"));
        }
        let length = match head[1] & 0x7F {
            126 => u64::from(reader.read_u16().await?),
            127 => reader.read_u64().await?,
            n => u64::from(n),
        };
        let length =
            usize::try_from(length).ok().filter(|n| *n <= MAX_MESSAGE).ok_or_else(|| invalid("message too large"))?;
        let mut mask = [0u8; 4];
        reader.read_exact(&mut mask).await?;
        let mut payload = vec![0u8; length];
        reader.read_exact(&mut payload).await?;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        match opcode {
            OP_CLOSE => return Ok(Message::Close),
            OP_PING => return Ok(Message::Ping(payload)),
            OP_PONG => return Ok(Message::Pong),
            OP_TEXT | OP_BINARY if message.is_none() => *message = Some(payload),
            OP_CONTINUATION => match message {
                Some(data) if data.len() + payload.len() <= MAX_MESSAGE => data.extend_from_slice(&payload),
                Some(_) => return Err(invalid("message too large")),
                None => return Err(invalid("continuation without a message")),
            },
            _ => return Err(invalid("unexpected opcode")),
        }
        if fin && let Some(data) = message.take() {
            return Ok(Message::Data(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn masked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![opcode_byte];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn masked_and_fragmented_client_messages_are_read() {
        let long = vec![7u8; 300];
        let mut bytes = masked(0x82, &[0, b'h', b'i']);
        bytes.extend(masked(0x01, b"par"));
        bytes.extend(masked(0x89, b"p"));
        bytes.extend(masked(0x80, b"ts"));
        bytes.extend(masked(0x82, &long));
        bytes.extend(masked(0x88, &[]));
        let mut reader = MessageReader::new(bytes.as_slice());
        assert_eq!(reader.next().await.expect("one"), Message::Data(vec![0, b'h', b'i']));
        // A ping may come between the fragments of a message; it is answered on its own.
        assert_eq!(reader.next().await.expect("ping"), Message::Ping(b"p".to_vec()));
        assert_eq!(reader.next().await.expect("two"), Message::Data(b"parts".to_vec()));
        assert_eq!(reader.next().await.expect("three"), Message::Data(long));
        assert_eq!(reader.next().await.expect("close"), Message::Close);
        assert_eq!(reader.next().await.expect("end"), Message::Close);
        let unmasked = [0x82u8, 1, 0];
        assert!(MessageReader::new(unmasked.as_slice()).next().await.is_err());
    }

    #[test]
    fn server_frames_have_the_length_forms() {
        assert_eq!(frame(OP_BINARY, &[1]), [0x82, 1, 1]);
        assert_eq!(&frame(OP_BINARY, &[0; 200])[..4], [0x82, 126, 0, 200]);
        assert_eq!(&frame(OP_BINARY, &vec![0; 70000])[..2], [0x82, 127]);
    }
}
