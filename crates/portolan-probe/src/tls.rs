//! TLS probes: the handshake accepts any certificate so that it can report
//! what the server showed, and the chain is verified afterwards.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

use crate::engine::{connect, Attempt, ProbeOptions};
use crate::proxy::Proxy;
use crate::types::{OutcomeClass, ProbeDetails, ProbeSpec, TlsDetails};

/// The client configuration and the verifier shared by a run's TLS probes.
pub(crate) struct TlsContext {
    config: Arc<ClientConfig>,
    /// Why nothing can be verified, if so (no trusted roots).
    verifier: Result<Arc<WebPkiServerVerifier>, String>,
}

impl TlsContext {
    /// Builds the context with the given roots, or the system's.
    pub(crate) fn new(roots: Option<Arc<RootCertStore>>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let accept_any = AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(accept_any))
            .with_no_client_auth();
        let verifier = roots.map_or_else(system_roots, Ok).and_then(|roots| {
            WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("cannot verify certificates: {e}"))
        });
        Ok(Self {
            config: Arc::new(config),
            verifier,
        })
    }

    /// Connects (directly or through the proxy), shakes hands, verifies.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attempt(
        &self,
        spec: &ProbeSpec,
        sni: &str,
        addrs: &[SocketAddr],
        proxy: Option<&Proxy>,
        options: &ProbeOptions,
        deadline: Instant,
        details: &mut ProbeDetails,
    ) -> Attempt {
        let server_name = match ServerName::try_from(sni.to_owned()) {
            Ok(name) => name,
            Err(e) => return Attempt::local(format!("invalid TLS server name {sni:?}: {e}")),
        };
        let mut tls = TlsDetails::default();
        let stream = match proxy {
            Some(proxy) => {
                tls.proxy = Some(proxy.authority());
                let stream = proxy.connect(&spec.target, deadline, details).await;
                details.tls = Some(tls.clone());
                stream
            }
            None => connect(spec, addrs, deadline, details).await,
        };
        let stream = match stream {
            Ok(stream) => stream,
            Err(attempt) => return attempt,
        };
        let connector = TlsConnector::from(self.config.clone());
        let handshake = timeout_at(deadline, connector.connect(server_name.clone(), stream)).await;
        let attempt = match handshake {
            Err(_) => Attempt::timed_out(OutcomeClass::TlsFailed {
                reason: "no handshake answer in time".into(),
            }),
            Ok(Err(e)) => Attempt::new(
                OutcomeClass::TlsFailed {
                    reason: e.to_string(),
                },
                None,
            ),
            Ok(Ok(stream)) => {
                let (_, conn) = stream.get_ref();
                tls.version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}").replace('_', "."));
                tls.cipher_suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                let certs = conn.peer_certificates().unwrap_or_default();
                if let Some((subject, issuer)) = certs.first().and_then(|c| names(c)) {
                    tls.subject = Some(subject);
                    tls.issuer = Some(issuer);
                }
                let verified = self
                    .verifier
                    .as_ref()
                    .map_err(String::clone)
                    .and_then(|v| verify(v, certs, &server_name));
                tls.verified = verified.is_ok();
                tls.verify_error = verified.err();
                match &tls.verify_error {
                    Some(e) if options.tls_require_verified => Attempt::new(
                        OutcomeClass::TlsFailed {
                            reason: format!("certificate not trusted: {e}"),
                        },
                        None,
                    ),
                    _ => Attempt::open(),
                }
            }
        };
        details.tls = Some(tls);
        attempt
    }
}

/// The system's trusted roots.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no trusted root certificates found on this system {errors:?}"
        ));
    }
    Ok(Arc::new(roots))
}

/// Verifies the chain the server sent for the server name, now.
fn verify(
    verifier: &WebPkiServerVerifier,
    certs: &[CertificateDer<'_>],
    name: &ServerName<'_>,
) -> Result<(), String> {
    let (leaf, intermediates) = certs
        .split_first()
        .ok_or("the server sent no certificate")?;
    verifier
        .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The subject and issuer of a certificate, as RFC 4514 strings.
fn names(cert: &CertificateDer<'_>) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some((cert.subject().to_string(), cert.issuer().to_string()))
}

/// Accepts any certificate but still checks the handshake signatures; the
/// chain is verified after the handshake, see [`verify`].
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
