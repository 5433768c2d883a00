//! The text handshake (peers protocol §2): the caller's three hello lines and the acceptor's
//! status line. Lines end with LF; a single CR before the LF is stripped (HAProxy accepts CRLF).

use bytes::BufMut;

/// Longest accepted line, without its line end. A longer line is an error, never an allocation.
pub const MAX_LINE_LEN: usize = 256;

/// First word of hello line 1.
pub const PROTOCOL_NAME: &str = "HAProxyS";

/// The version this codec speaks (`HAProxyS 2.1`).
pub const VERSION: Version = Version { major: 2, minor: 1 };

/// Protocol version of hello line 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// HAProxy accepts major 2 with minor 0 or 1 (2.0 = "downgraded": no timed updates).
    pub fn is_supported(self) -> bool {
        self.major == 2 && self.minor <= 1
    }
}

/// Why handshake bytes cannot be decoded at all (the caller closes without a status line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// No line end within [`MAX_LINE_LEN`] bytes.
    #[error("handshake line {line} is longer than {max} bytes without a line end")]
    LineTooLong { line: u8, max: usize },
    /// The status line does not start with a decimal number.
    #[error("status line {text:?} does not start with a decimal code")]
    BadStatusLine { text: String },
    /// A name to encode is empty, too long, or contains a space, CR or LF.
    #[error("peer name {name:?} cannot be sent in a hello: it must be 1..={max} bytes without spaces or line breaks")]
    InvalidName { name: String, max: usize },
}

/// The three hello lines as received (line ends removed), before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloLines {
    /// Line 1, e.g. `HAProxyS 2.1`.
    pub version: Vec<u8>,
    /// Line 2: the name the caller uses for the callee.
    pub remote_name: Vec<u8>,
    /// Line 3: `<caller name> <pid> <relative pid>`.
    pub peer: Vec<u8>,
}

/// A checked hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: Version,
    /// Line 2: the name of the peer being called (the callee's local name).
    pub remote_name: String,
    /// Line 3 up to the first space: the caller's own peer name.
    pub local_name: String,
    /// Line 3 after the first space (`<pid> <relative pid>` as HAProxy sends it); nobody parses
    /// it on receipt.
    pub rest: String,
}

impl Hello {
    /// A `HAProxyS 2.1` hello from `local_name` (pid `pid`, relative pid 1) to `remote_name`.
    pub fn new(remote_name: &str, local_name: &str, pid: u32) -> Hello {
        Hello {
            version: VERSION,
            remote_name: remote_name.to_owned(),
            local_name: local_name.to_owned(),
            rest: format!("{pid} 1"),
        }
    }

    /// The pid HAProxy puts first after the name (a new pid from the local HAProxy means a new
    /// worker process).
    pub fn pid(&self) -> Option<u32> {
        self.rest.split(' ').next()?.parse().ok()
    }

    /// Appends the three lines (LF line ends).
    pub fn encode(&self, dst: &mut impl BufMut) -> Result<(), HandshakeError> {
        check_name(&self.remote_name)?;
        check_name(&self.local_name)?;
        let line1 = format!(
            "{PROTOCOL_NAME} {}.{}",
            self.version.major, self.version.minor
        );
        let line3 = format!("{} {}", self.local_name, self.rest);
        if line3.len() > MAX_LINE_LEN || line3.contains(['\n', '\r']) {
            return Err(HandshakeError::InvalidName {
                name: line3,
                max: MAX_LINE_LEN,
            });
        }
        for line in [line1.as_str(), self.remote_name.as_str(), line3.as_str()] {
            dst.put_slice(line.as_bytes());
            dst.put_u8(b'\n');
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), HandshakeError> {
    if name.is_empty() || name.len() > MAX_LINE_LEN || name.contains([' ', '\n', '\r']) {
        return Err(HandshakeError::InvalidName {
            name: name.to_owned(),
            max: MAX_LINE_LEN,
        });
    }
    Ok(())
}

/// Status line of the accepting side (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 200: handshake succeeded; binary messages follow on the same stream.
    Success,
    /// 300: the caller is the local peer and a session with it exists.
    TryAgain,
    /// 501: bad protocol id, or line 3 without a space.
    ProtocolError,
    /// 502: major ≠ 2, minor > 1, or malformed version.
    BadVersion,
    /// 503: line 2 is not the receiver's local peer name.
    LocalNameMismatch,
    /// 504: the caller's name is not in the receiver's peers section.
    UnknownPeer,
    /// Any other number.
    Other(u32),
}

impl StatusCode {
    pub fn code(self) -> u32 {
        match self {
            StatusCode::Success => 200,
            StatusCode::TryAgain => 300,
            StatusCode::ProtocolError => 501,
            StatusCode::BadVersion => 502,
            StatusCode::LocalNameMismatch => 503,
            StatusCode::UnknownPeer => 504,
            StatusCode::Other(c) => c,
        }
    }

    pub fn from_code(code: u32) -> StatusCode {
        match code {
            200 => StatusCode::Success,
            300 => StatusCode::TryAgain,
            501 => StatusCode::ProtocolError,
            502 => StatusCode::BadVersion,
            503 => StatusCode::LocalNameMismatch,
            504 => StatusCode::UnknownPeer,
            c => StatusCode::Other(c),
        }
    }

    /// Appends `<code>\n`.
    pub fn encode(self, dst: &mut impl BufMut) {
        dst.put_slice(format!("{}\n", self.code()).as_bytes());
    }

    /// Short label as in `show peers` `last_status=`.
    pub fn label(self) -> &'static str {
        match self {
            StatusCode::Success => "ESTA",
            StatusCode::TryAgain => "RETR",
            StatusCode::ProtocolError => "PROT",
            StatusCode::BadVersion => "VERS",
            StatusCode::LocalNameMismatch => "NAME",
            StatusCode::UnknownPeer => "UNKN",
            StatusCode::Other(_) => "OTHER",
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.label())
    }
}

/// Splits the next line off `buf`: `Ok(None)` if no LF yet, else the line without its line end
/// and the bytes consumed.
fn next_line(buf: &[u8], line: u8) -> Result<Option<(&[u8], usize)>, HandshakeError> {
    let window = buf.get(..MAX_LINE_LEN.saturating_add(2)).unwrap_or(buf);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        // MAX_LINE_LEN content bytes plus an optional CR may precede the LF.
        if buf.len() > MAX_LINE_LEN.saturating_add(1) {
            return Err(HandshakeError::LineTooLong {
                line,
                max: MAX_LINE_LEN,
            });
        }
        return Ok(None);
    };
    let mut content = window.get(..lf).unwrap_or_default();
    if let Some(stripped) = content.strip_suffix(b"\r") {
        content = stripped;
    }
    if content.len() > MAX_LINE_LEN {
        return Err(HandshakeError::LineTooLong {
            line,
            max: MAX_LINE_LEN,
        });
    }
    Ok(Some((content, lf.saturating_add(1))))
}

/// Reads up to `N` lines; returns the complete ones and the bytes they used.
fn lines<const N: usize>(buf: &[u8]) -> Result<(Vec<&[u8]>, usize), HandshakeError> {
    let mut out = Vec::with_capacity(N);
    let mut used = 0usize;
    for n in 1..=N {
        let rest = buf.get(used..).unwrap_or_default();
        match next_line(rest, n as u8)? {
            Some((line, len)) => {
                out.push(line);
                used = used.saturating_add(len);
            }
            None => break,
        }
    }
    Ok((out, used))
}

/// Decodes the three hello lines from the start of `buf`.
///
/// `Ok(None)` until all three lines are there; then the lines and the number of bytes consumed
/// (binary messages may follow in the same buffer). Use [`check_hello`] to decide the answer and
/// [`early_status`] to answer before the last lines arrive, as HAProxy does.
pub fn decode_hello(buf: &[u8]) -> Result<Option<(HelloLines, usize)>, HandshakeError> {
    let (found, used) = lines::<3>(buf)?;
    match found.as_slice() {
        [v, r, p] => Ok(Some((
            HelloLines {
                version: v.to_vec(),
                remote_name: r.to_vec(),
                peer: p.to_vec(),
            },
            used,
        ))),
        _ => Ok(None),
    }
}

/// Checks 1–2 of §2.2 on hello line 1.
fn check_version_line(line: &[u8]) -> Result<Version, StatusCode> {
    let prefix = format!("{PROTOCOL_NAME} ");
    let Some(rest) = line.strip_prefix(prefix.as_bytes()) else {
        return Err(StatusCode::ProtocolError);
    };
    parse_version(rest).ok_or(StatusCode::BadVersion)
}

/// `<digits>.<digits>` with nothing after it, major 2 and minor ≤ 1.
fn parse_version(text: &[u8]) -> Option<Version> {
    let text = std::str::from_utf8(text).ok()?;
    let (major, minor) = text.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(major) || !all_digits(minor) {
        return None;
    }
    let version = Version {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    };
    version.is_supported().then_some(version)
}

/// The answer HAProxy would give, in the order of §2.2: 501/502 on line 1, 503 on line 2, 501 if
/// line 3 has no space, 504 if its first word is not a peer of the section (`is_known_peer`; the
/// receiver's own name counts, which is how a reloading process is recognised). `Ok` carries the
/// parsed hello, to be answered with `200` (or `300` for a duplicate local peer: the caller's
/// decision, it needs session state).
pub fn check_hello(
    lines: &HelloLines,
    my_name: &str,
    is_known_peer: impl Fn(&str) -> bool,
) -> Result<Hello, StatusCode> {
    let version = check_version_line(&lines.version)?;
    if lines.remote_name != my_name.as_bytes() {
        return Err(StatusCode::LocalNameMismatch);
    }
    let Some(space) = lines.peer.iter().position(|&b| b == b' ') else {
        return Err(StatusCode::ProtocolError);
    };
    let (name, rest) = lines.peer.split_at(space);
    let local_name = std::str::from_utf8(name).map_err(|_| StatusCode::UnknownPeer)?;
    if !is_known_peer(local_name) {
        return Err(StatusCode::UnknownPeer);
    }
    Ok(Hello {
        version,
        remote_name: my_name.to_owned(),
        local_name: local_name.to_owned(),
        rest: String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).into_owned(),
    })
}

/// The error status already decided by the complete lines at the start of `buf`, before the
/// whole hello has arrived: HAProxy answers a bad line 1 (501/502) or line 2 (503) as soon as it
/// has read it. `None`: no verdict yet (or the hello is complete: use [`check_hello`]).
pub fn early_status(buf: &[u8], my_name: &str) -> Option<StatusCode> {
    let (found, _) = lines::<2>(buf).ok()?;
    let version = found.first()?;
    if let Err(status) = check_version_line(version) {
        return Some(status);
    }
    let remote = found.get(1)?;
    (*remote != my_name.as_bytes()).then_some(StatusCode::LocalNameMismatch)
}

/// Decodes the status line from the start of `buf`: `Ok(None)` until its LF arrives, then the
/// status and the bytes consumed. Like HAProxy (`atoi`), the leading decimal number counts.
pub fn decode_status(buf: &[u8]) -> Result<Option<(StatusCode, usize)>, HandshakeError> {
    let Some((line, used)) = next_line(buf, 1)? else {
        return Ok(None);
    };
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    let code = std::str::from_utf8(line.get(..digits).unwrap_or_default())
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .ok_or_else(|| HandshakeError::BadStatusLine {
            text: String::from_utf8_lossy(line).into_owned(),
        })?;
    Ok(Some((StatusCode::from_code(code), used)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        matches!(name, "A" | "B")
    }

    fn answer(bytes: &[u8]) -> Result<Hello, StatusCode> {
        let (lines, _) = decode_hello(bytes).unwrap().unwrap();
        check_hello(&lines, "A", known)
    }

    #[test]
    fn capture_hello_roundtrips() {
        let bytes = b"HAProxyS 2.1\nA\nB 3811 1\n\x00\x00";
        let (lines, used) = decode_hello(bytes).unwrap().unwrap();
        assert_eq!(used, 24);
        let hello = check_hello(&lines, "A", known).unwrap();
        assert_eq!(hello.local_name, "B");
        assert_eq!(hello.remote_name, "A");
        assert_eq!(hello.pid(), Some(3811));
        assert_eq!(hello.version, VERSION);
        let mut out = Vec::new();
        hello.encode(&mut out).unwrap();
        assert_eq!(out, &bytes[..24]);
        assert_eq!(Hello::new("A", "B", 3811), hello);
    }

    #[test]
    fn check_order_of_section_2_2() {
        assert_eq!(
            answer(b"HAProxyX 2.1\nNOT-A\nZ 1 1\n"),
            Err(StatusCode::ProtocolError)
        );
        assert_eq!(
            answer(b"HAProxyS 2.2\nNOT-A\nZ 1 1\n"),
            Err(StatusCode::BadVersion)
        );
        assert_eq!(
            answer(b"HAProxyS 2.1.0\nA\nB 1 1\n"),
            Err(StatusCode::BadVersion)
        );
        assert_eq!(
            answer(b"HAProxyS 2.1\nNOT-A\nZ 1 1\n"),
            Err(StatusCode::LocalNameMismatch)
        );
        assert_eq!(
            answer(b"HAProxyS 2.1\nA\nZ\n"),
            Err(StatusCode::ProtocolError)
        );
        assert_eq!(
            answer(b"HAProxyS 2.1\nA\nZ 1 1\n"),
            Err(StatusCode::UnknownPeer)
        );
        assert_eq!(
            answer(b"HAProxyS 2.0\nA\nB 1 1\n").unwrap().version,
            Version { major: 2, minor: 0 }
        );
        assert!(answer(b"HAProxyS 2.1\r\nA\r\nB \r\n").is_ok());
    }

    #[test]
    fn incomplete_and_early_answers() {
        let full = b"HAProxyS 2.1\nA\nB 1 1\n";
        for n in 0..full.len() {
            assert_eq!(decode_hello(&full[..n]), Ok(None));
            assert_eq!(early_status(&full[..n], "A"), None);
        }
        assert_eq!(
            early_status(b"GET / HTTP/1.1\r\n", "A"),
            Some(StatusCode::ProtocolError)
        );
        assert_eq!(
            early_status(b"HAProxyS 2.1\nX\n", "A"),
            Some(StatusCode::LocalNameMismatch)
        );
    }

    #[test]
    fn long_lines_are_errors() {
        let mut long = b"HAProxyS 2.1\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_LEN + 2));
        assert_eq!(
            decode_hello(&long),
            Err(HandshakeError::LineTooLong {
                line: 2,
                max: MAX_LINE_LEN
            })
        );
        let mut exact = vec![b'x'; MAX_LINE_LEN];
        exact.extend_from_slice(b"\r\n");
        assert_eq!(next_line(&exact, 1).unwrap().unwrap().0.len(), MAX_LINE_LEN);
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            decode_status(b"200\n\x00\x00"),
            Ok(Some((StatusCode::Success, 4)))
        );
        assert_eq!(decode_status(b"20"), Ok(None));
        assert_eq!(
            decode_status(b"503\n"),
            Ok(Some((StatusCode::LocalNameMismatch, 4)))
        );
        assert!(decode_status(b"OK\n").is_err());
        for code in [200, 300, 501, 502, 503, 504, 404] {
            let mut out = Vec::new();
            StatusCode::from_code(code).encode(&mut out);
            assert_eq!(
                decode_status(&out),
                Ok(Some((StatusCode::from_code(code), out.len())))
            );
        }
    }
}
