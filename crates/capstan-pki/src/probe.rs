//! The CA probe `capstan join` runs before it sends any secret: a TLS
//! handshake that records the manager's chain so it can be checked against
//! the CA digest in the join token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::chain::verify_presented_chain;
use crate::digest::CaDigest;
use crate::error::PkiError;
use crate::node::MANAGER_SERVER_NAME;

/// How long connecting plus the TLS handshake may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the manager at `addr` ("host:port") without a client
/// certificate, and returns its CA certificate (PEM) if and only if the CA's
/// digest is `expected` and the manager's certificate is valid under it.
///
/// The handshake is real (the manager proves possession of its key); trust is
/// decided afterwards by [`crate::verify_presented_chain`]. Nothing secret is
/// sent on this connection.
pub async fn fetch_trusted_ca(addr: &str, expected: &CaDigest) -> Result<String, PkiError> {
    if addr
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(PkiError::InvalidAddress {
            addr: addr.to_string(),
            reason: "it has no host or no valid port".to_string(),
        });
    }
    let recorder = Arc::new(RecordingVerifier::new());
    let handshake = handshake(addr, recorder.clone());
    match tokio::time::timeout(PROBE_TIMEOUT, handshake).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(PkiError::Connect {
                addr: addr.to_string(),
                reason: format!(
                    "no TLS handshake within {} seconds",
                    PROBE_TIMEOUT.as_secs()
                ),
            })
        }
    }
    let chain = recorder.take();
    tracing::debug!(
        addr,
        certificates = chain.len(),
        "manager presented its chain"
    );
    verify_presented_chain(&chain, expected, OffsetDateTime::now_utc())
}

async fn handshake(addr: &str, recorder: Arc<RecordingVerifier>) -> Result<(), PkiError> {
    let connect_error = |reason: String| PkiError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let config = ClientConfig::builder_with_provider(recorder.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_error(format!("TLS setup failed ({e})")))?
        .dangerous()
        .with_custom_certificate_verifier(recorder)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let server_name = ServerName::try_from(MANAGER_SERVER_NAME).expect("a valid constant DNS name");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| connect_error(format!("TLS handshake failed ({e})")))?;
    // Best effort: we only needed the handshake.
    let _ = tls.shutdown().await;
    Ok(())
}

/// Accepts any chain provisionally and remembers it, while still checking the
/// handshake signatures so the peer proves it holds the leaf's key.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    fn new() -> Self {
        RecordingVerifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            chain: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Vec<CertificateDer<'static>> {
        // A poisoned lock only means another thread panicked mid-push; the
        // chain is then incomplete and will fail verification.
        std::mem::take(&mut *self.chain.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        *chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
