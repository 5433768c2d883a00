//! Mutual-TLS handshakes over any byte stream, returning the verified peer's identity.
//!
//! With TLS 1.3 the server verifies the client's certificate after the client has finished its
//! side of the handshake. So [`connect`] can succeed although the server then refuses our
//! certificate; that refusal arrives as an I/O error on the first read (for the peers protocol:
//! while waiting for the status line). Pass that error to [`HandshakeError::from_io`] to get
//! the same explanation a failed handshake gives.
//!
//! Neither helper bounds time: the caller wraps them in its handshake timeout.

use std::io;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::config::TlsConfigs;
use super::identity::{utc, IdentityError, PeerIdentity};

/// Why a mesh TLS handshake failed, phrased for the person reading the log.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "cannot dial '{name}': not a valid DNS name for TLS; members.yaml addresses must be DNS \
         names"
    )]
    BadDnsName { name: String },
    #[error("peer certificate refused: {}", describe(.0))]
    PeerCertificate(CertificateError),
    #[error(
        "peer presented no certificate: only sidecars holding the group's peer-tls Secret may \
         connect to the mesh port"
    )]
    NoPeerCertificate,
    #[error(
        "the peer refused this connection (TLS alert {:?}{}): check this pod's own leaf in the \
         mounted Secret, and the peer's log for its reason",
        .0,
        alert_meaning(.0)
    )]
    RefusedByPeer(AlertDescription),
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    #[error("connection failed during the TLS handshake: {0}")]
    Io(io::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl HandshakeError {
    /// Classifies an I/O error from a TLS stream (tokio-rustls wraps rustls errors in them).
    pub fn from_io(error: io::Error) -> Self {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Self::from(tls.clone()),
            None => Self::Io(error),
        }
    }

    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::BadDnsName { .. } => "bad_dns_name",
            Self::PeerCertificate(e) => match e {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "peer_certificate_expired"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "peer_certificate_not_yet_valid"
                }
                CertificateError::UnknownIssuer => "peer_certificate_unknown_issuer",
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => "peer_certificate_wrong_name",
                _ => "peer_certificate_invalid",
            },
            Self::NoPeerCertificate => "peer_no_certificate",
            Self::RefusedByPeer(_) => "refused_by_peer",
            Self::Tls(_) => "tls",
            Self::Io(_) => "io",
            Self::Identity(e) => e.metric_label(),
        }
    }
}

impl From<rustls::Error> for HandshakeError {
    fn from(error: rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(e) => Self::PeerCertificate(e),
            rustls::Error::NoCertificatesPresented => Self::NoPeerCertificate,
            rustls::Error::AlertReceived(alert) => Self::RefusedByPeer(alert),
            other => Self::Tls(other),
        }
    }
}

/// The reasons an operator meets, in plain words plus what to check.
fn describe(error: &CertificateError) -> String {
    use CertificateError as E;
    match error {
        E::ExpiredContext { time, not_after } => format!(
            "certificate expired on {} (now {}): is the operator renewing the group's leaves?",
            utc(secs(not_after.as_secs())),
            utc(secs(time.as_secs()))
        ),
        E::Expired => {
            "certificate expired: is the operator renewing the group's leaves?".to_owned()
        }
        E::NotValidYetContext { time, not_before } => format!(
            "certificate not valid yet: valid from {} (now {}): check both nodes' clocks",
            utc(secs(not_before.as_secs())),
            utc(secs(time.as_secs()))
        ),
        E::NotValidYet => "certificate not valid yet: check both nodes' clocks".to_owned(),
        E::UnknownIssuer => "unknown issuer: not signed by a CA in our ca.crt (a certificate \
             of another group, or a CA rotation whose new CA has not reached this pod yet)"
            .to_owned(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("{error}: the pod answering at that address is not the member that was dialed")
        }
        other => other.to_string(),
    }
}

/// What the alerts a rustls peer sends about our certificate mean.
fn alert_meaning(alert: &AlertDescription) -> &'static str {
    match alert {
        AlertDescription::CertificateExpired => {
            ": our certificate is expired or not yet valid by the peer's clock"
        }
        AlertDescription::UnknownCA => {
            ": the peer's ca.crt does not hold the CA of our certificate"
        }
        AlertDescription::CertificateRequired => ": we presented no certificate",
        AlertDescription::BadCertificate => {
            ": the peer found our certificate malformed or misnamed"
        }
        _ => "",
    }
}

fn secs(unix: u64) -> i64 {
    i64::try_from(unix).unwrap_or(i64::MAX)
}

/// Accepts a connection another sidecar opened to us, with the latest server config.
/// The returned identity belongs to a certificate rustls has verified against the bundle;
/// the caller still checks the hello's claimed name with [`PeerIdentity::check_claimed_name`].
pub async fn accept<IO>(
    configs: &TlsConfigs,
    io: IO,
) -> Result<(TlsStream<IO>, PeerIdentity), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stream = TlsAcceptor::from(configs.server.clone())
        .accept(io)
        .await
        .map_err(HandshakeError::from_io)?;
    let identity = peer_identity(stream.get_ref().1.peer_certificates())?;
    Ok((TlsStream::Server(stream), identity))
}

/// Opens TLS to the member at `dns_name` (the name we dialed, verified against the server's
/// SANs), presenting our leaf. See the module doc for when a refusal of our certificate shows.
pub async fn connect<IO>(
    configs: &TlsConfigs,
    io: IO,
    dns_name: &str,
) -> Result<(TlsStream<IO>, PeerIdentity), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name =
        ServerName::try_from(dns_name.to_owned()).map_err(|_| HandshakeError::BadDnsName {
            name: dns_name.to_owned(),
        })?;
    let stream = TlsConnector::from(configs.client.clone())
        .connect(name, io)
        .await
        .map_err(HandshakeError::from_io)?;
    let identity = peer_identity(stream.get_ref().1.peer_certificates())?;
    Ok((TlsStream::Client(stream), identity))
}

fn peer_identity(
    certs: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<PeerIdentity, HandshakeError> {
    let leaf = certs
        .and_then(<[_]>::first)
        .ok_or(HandshakeError::NoPeerCertificate)?;
    Ok(PeerIdentity::from_der(leaf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_rustls_errors_are_explained() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let err = HandshakeError::from_io(wrapped);
        assert_eq!(err.metric_label(), "peer_certificate_unknown_issuer");
        assert!(
            err.to_string()
                .starts_with("peer certificate refused: unknown issuer"),
            "{err}"
        );

        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired),
        );
        let err = HandshakeError::from_io(alert);
        assert!(matches!(
            err,
            HandshakeError::RefusedByPeer(AlertDescription::CertificateExpired)
        ));

        let reset = HandshakeError::from_io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(reset.metric_label(), "io");
    }

    #[test]
    fn expiry_is_dated() {
        let err = HandshakeError::from(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: rustls::pki_types::UnixTime::since_unix_epoch(
                    std::time::Duration::from_secs(1_609_459_200 + 86_400),
                ),
                not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                    std::time::Duration::from_secs(1_609_459_200),
                ),
            },
        ));
        assert_eq!(err.metric_label(), "peer_certificate_expired");
        assert!(
            err.to_string()
                .starts_with("peer certificate refused: certificate expired on Jan  1"),
            "{err}"
        );
    }
}
