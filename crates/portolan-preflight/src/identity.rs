//! Who is checking what: file hashes, the default token, the host name.

use std::fmt::Write as _;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::PreflightError;

/// The SHA-256 of some bytes, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The token listeners and probes agree on when none is given: derived from
/// the spec's hash, so that `listen` and `check` run from the same spec file
/// match without configuration. It keeps listeners from answering stray
/// datagrams; it is not a secret.
pub fn default_token(spec_sha256: &str) -> String {
    let short: String = spec_sha256.chars().take(16).collect();
    format!("portolan-{short}")
}

/// This machine's host name, for results files (`unknown` if it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The system's trusted roots plus the certificates of a PEM file (a
/// site's TLS-inspecting proxy CA, a test CA). The file must hold at least
/// one certificate; the system's roots may be missing.
pub fn roots_with_pem(file: &str, pem: &[u8]) -> Result<Arc<RootCertStore>, PreflightError> {
    let bad = |reason: String| PreflightError::CaFile {
        file: file.to_owned(),
        reason,
    };
    let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if extra.is_empty() {
        return Err(bad("no certificate in it".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Ok(Arc::new(roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            default_token(&sha256_hex(b"abc")),
            "portolan-ba7816bf8f01cfea"
        );
    }
}
