//! The handshake that opens every connection: the dialer introduces itself, the
//! acceptor checks it against the configuration and answers with one status byte.
//!
//! The layout is fixed and independent of the payload codec, so that any future
//! version can still read an old peer's introduction and refuse it cleanly.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::HEADER_LEN;
use crate::config::{Config, ServerId};

/// Version of the wire protocol spoken by this build, sent in every handshake.
pub const PROTOCOL_VERSION: u16 = 1;

/// First bytes of every introduction, to tell a stray client from a peer quickly.
pub(crate) const MAGIC: [u8; 4] = *b"CLST";

/// Magic, version, sender id, name length.
const FIXED_LEN: usize = 4 + 2 + 8 + 1;

/// Longest introduction payload: the fixed part and a 255-byte cluster name.
const MAX_HELLO_LEN: usize = FIXED_LEN + 255;

/// The dialer's introduction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u16,
    pub(crate) cluster_name: String,
    pub(crate) sender: ServerId,
}

/// Why an acceptor refused a connection; sent back as one status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an introduction at all (wrong magic, bad length, bad UTF-8).
    Malformed,
    /// The dialer speaks another protocol version.
    WrongVersion,
    /// The dialer belongs to another cluster.
    WrongCluster,
    /// The dialer's id is not in the acceptor's configuration.
    UnknownId,
    /// The dialer claims the acceptor's own id.
    OwnId,
    /// Over TLS: the dialer claims an id its certificate is not bound to.
    CertificateMismatch,
}

/// Status byte for an accepted connection.
const ACCEPTED: u8 = 0;

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::Malformed => 1,
            Refusal::WrongVersion => 2,
            Refusal::WrongCluster => 3,
            Refusal::UnknownId => 4,
            Refusal::OwnId => 5,
            Refusal::CertificateMismatch => 6,
        }
    }

    fn from_code(code: u8) -> Refusal {
        match code {
            2 => Refusal::WrongVersion,
            3 => Refusal::WrongCluster,
            4 => Refusal::UnknownId,
            5 => Refusal::OwnId,
            6 => Refusal::CertificateMismatch,
            _ => Refusal::Malformed,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "malformed handshake",
            Refusal::WrongVersion => "wrong protocol version",
            Refusal::WrongCluster => "wrong cluster name",
            Refusal::UnknownId => "sender id not in configuration",
            Refusal::OwnId => "sender claims the receiver's own id",
            Refusal::CertificateMismatch => "sender id not bound to its certificate",
        })
    }
}

/// What went wrong while reading an introduction.
#[derive(Debug)]
pub(crate) enum HelloError {
    /// The bytes arrived but are refused; the reason is sent back.
    Refused(Refusal),
    /// The socket failed or closed before a whole introduction arrived.
    Io(io::Error),
}

impl Hello {
    /// The introduction as a complete frame.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Config::validate keeps names within 1..=255 bytes; cut defensively anyway.
        let name = &self.cluster_name.as_bytes()[..self.cluster_name.len().min(255)];
        let payload_len = FIXED_LEN + name.len();

        let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
        out.extend_from_slice(&(payload_len as u32).to_be_bytes());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out
    }

    fn decode(payload: &[u8]) -> Result<Hello, Refusal> {
        if payload.len() < FIXED_LEN || payload[..4] != MAGIC {
            return Err(Refusal::Malformed);
        }

        let version = u16::from_be_bytes([payload[4], payload[5]]);
        let mut sender = [0u8; 8];
        sender.copy_from_slice(&payload[6..14]);
        let name_len = payload[14] as usize;
        if payload.len() != FIXED_LEN + name_len {
            return Err(Refusal::Malformed);
        }

        let cluster_name = std::str::from_utf8(&payload[FIXED_LEN..])
            .map_err(|_| Refusal::Malformed)?
            .to_owned();
        Ok(Hello {
            version,
            cluster_name,
            sender: ServerId::from_be_bytes(sender),
        })
    }

    /// Checks the introduction against the acceptor's configuration.
    pub(crate) fn check(&self, config: &Config, own_id: ServerId) -> Result<(), Refusal> {
        if self.version != PROTOCOL_VERSION {
            return Err(Refusal::WrongVersion);
        }
        if self.cluster_name != config.cluster_name() {
            return Err(Refusal::WrongCluster);
        }
        if self.sender == own_id {
            return Err(Refusal::OwnId);
        }
        if !config.contains(self.sender) {
            return Err(Refusal::UnknownId);
        }
        Ok(())
    }
}

/// Reads one introduction frame. A length prefix beyond the largest possible
/// introduction is refused before anything more is read.
pub(crate) async fn read_hello<S>(stream: &mut S) -> Result<Hello, HelloError>
where
    S: AsyncRead + Unpin,
{
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(HelloError::Io)?;
    let len = u32::from_be_bytes(header) as usize;
    if !(FIXED_LEN..=MAX_HELLO_LEN).contains(&len) {
        return Err(HelloError::Refused(Refusal::Malformed));
    }

    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(HelloError::Io)?;
    Hello::decode(&payload).map_err(HelloError::Refused)
}

/// Sends the acceptor's answer: a one-byte frame, 0 for accepted or a refusal code.
pub(crate) async fn write_answer<S>(stream: &mut S, answer: Result<(), Refusal>) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let code = match answer {
        Ok(()) => ACCEPTED,
        Err(refusal) => refusal.code(),
    };
    stream.write_all(&[0, 0, 0, 1, code]).await?;
    stream.flush().await
}

/// Reads the acceptor's answer.
pub(crate) async fn read_answer<S>(stream: &mut S) -> io::Result<Result<(), Refusal>>
where
    S: AsyncRead + Unpin,
{
    let mut answer = [0u8; HEADER_LEN + 1];
    stream.read_exact(&mut answer).await?;
    if answer[..HEADER_LEN] != [0, 0, 0, 1] {
        return Ok(Err(Refusal::Malformed));
    }
    Ok(match answer[HEADER_LEN] {
        ACCEPTED => Ok(()),
        code => Err(Refusal::from_code(code)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_introduction_round_trips() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster_name: "demo".into(),
            sender: 42,
        };
        let bytes = hello.encode();
        let decoded = read_hello(&mut &bytes[..]).await.unwrap();
        assert_eq!(decoded, hello);
    }

    #[tokio::test]
    async fn a_huge_introduction_length_is_refused_before_reading_it() {
        let bytes = [0xFF, 0xFF, 0xFF, 0xFF];
        let result = read_hello(&mut &bytes[..]).await;
        assert!(matches!(
            result,
            Err(HelloError::Refused(Refusal::Malformed))
        ));
    }
}
