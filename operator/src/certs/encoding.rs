//! The canonical text forms the operator writes: PEM blocks, SHA-256 fingerprints and
//! whole-second times. Minting and parsing both go through here, so that an inventory parsed
//! back from its Secrets equals the one that was minted, byte for byte.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 7468 PEM: standard base64, 64 characters per line, LF line endings.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            // n input bytes fill n + 1 output characters; the rest is padding.
            b64.push(if i <= n {
                BASE64[((word >> (18 - 6 * i)) & 0x3f) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SHA-256 of the DER, lowercase hex.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// X.509 times have whole seconds: everything the planner writes into a certificate is
/// rounded down first, so that what is minted is exactly what was planned.
pub(crate) fn floor_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        // Before 1970 rounding down means away from the epoch.
        Err(e) => {
            let d = e.duration();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            UNIX_EPOCH - Duration::from_secs(secs)
        }
    }
}

/// Seconds since the epoch (negative before 1970), as X.509 parsers report them.
pub(crate) fn from_unix(secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// `2031-01-01T00:00:00Z`, for messages and CA names.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(floor_secs(t));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// First 16 hex digits of a fingerprint: enough to tell CAs apart in a message.
pub(crate) fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors, wrapped in PEM armour.
        for (input, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let body = if b64.is_empty() {
                String::new()
            } else {
                format!("{b64}\n")
            };
            assert_eq!(
                pem_encode("X", input.as_bytes()),
                format!("-----BEGIN X-----\n{body}-----END X-----\n"),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn pem_lines_are_64_characters_and_decode_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        let decoded = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("our PEM is readable by rustls-pemfile");
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].as_ref(), der.as_slice());
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn floor_and_format() {
        let t = UNIX_EPOCH + Duration::new(1_924_992_000, 999_999_999);
        assert_eq!(
            floor_secs(t),
            UNIX_EPOCH + Duration::from_secs(1_924_992_000)
        );
        assert_eq!(rfc3339(t), "2031-01-01T00:00:00Z");
        let before = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(floor_secs(before), UNIX_EPOCH - Duration::from_secs(2));
        assert_eq!(from_unix(-2), Some(UNIX_EPOCH - Duration::from_secs(2)));
        assert_eq!(short("0123456789abcdef0123"), "0123456789abcdef");
    }
}
