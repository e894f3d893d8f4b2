//! TLS to the PostgreSQL state, with libpq's `sslmode` and `sslrootcert` meaning what they
//! mean to `psql`, so a URL that works there works here:
//!
//! | `sslmode`      | TLS                        | the server's certificate                      |
//! |----------------|----------------------------|-----------------------------------------------|
//! | `disable`      | never                      | —                                             |
//! | `prefer` (default) | when the server offers it | not checked (encryption against eavesdroppers) |
//! | `require`      | always                     | not checked; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca`    | always                     | signed by `sslrootcert` (else the system's roots) |
//! | `verify-full`  | always                     | as `verify-ca`, and issued for the host named |
//!
//! `sslrootcert=PATH` is a PEM file of the certificate authorities to trust (percent-encoded in
//! the URL where it must be). Across machines, use `verify-full`: the others do not stop a
//! server that only pretends to be the database.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of TLS a connection insists on (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Mode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, unchecked.
    #[default]
    Prefer,
    /// TLS, unchecked (checked as `VerifyCa` when a root certificate is given).
    Require,
    /// TLS, the chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// What the URL asked of TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Settings {
    pub mode: Mode,
    /// `sslrootcert`: the authorities to trust, instead of the system's.
    pub root_cert: Option<PathBuf>,
}

impl Settings {
    /// Reads `sslmode` and `sslrootcert` from one query pair; `false` when it is neither.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "sslmode" => {
                self.mode = match value {
                    "disable" => Mode::Disable,
                    "prefer" | "allow" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode `{other}` in the PostgreSQL state URL is not one of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                };
                Ok(true)
            }
            "sslrootcert" => {
                let path = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| {
                        "sslrootcert in the PostgreSQL state URL is not UTF-8".to_string()
                    })?;
                self.root_cert = Some(PathBuf::from(path.as_ref()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The `sslmode` tokio-postgres knows that asks what this one does of the connection
    /// (whether TLS is tried, and whether it is required); the checks are the connector's.
    pub fn driver_mode(&self) -> &'static str {
        match self.mode {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        }
    }

    /// The connector that makes TLS connections as asked (unused under `disable`).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let short_of_name = |roots| -> Arc<dyn ServerCertVerifier> {
            Arc::new(ShortOfName {
                roots,
                provider: Arc::clone(&provider),
            })
        };
        let verifier = match (self.mode, &self.root_cert) {
            (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => short_of_name(None),
            (Mode::Require | Mode::VerifyCa, _) => short_of_name(Some(Arc::new(self.roots()?))),
            (Mode::VerifyFull, _) => WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.roots()?),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| format!("the TLS settings cannot be used: {e}"))?,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("the TLS settings cannot be used: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// The authorities to trust: `sslrootcert`'s, or the system's.
    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let shown = path.display();
                let pem = rivulet_spec::load::read_regular_file(path, MAX_ROOT_CERT_BYTES)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        format!("sslrootcert {shown} is not a PEM certificate file: {e}")
                    })?;
                if certs.is_empty() {
                    return Err(format!("sslrootcert {shown} holds no certificate"));
                }
                let (_, refused) = roots.add_parsable_certificates(certs);
                if roots.is_empty() {
                    return Err(format!(
                        "sslrootcert {shown}: none of its {refused} certificates can be used"
                    ));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err("the system has no trusted certificate authorities: give the database's with sslrootcert=PATH".into());
                }
            }
        }
        Ok(roots)
    }
}

/// The largest `sslrootcert` file read.
const MAX_ROOT_CERT_BYTES: u64 = 4 * 1024 * 1024;

/// Checks a server's certificate short of its name: against `roots` when there are some
/// (libpq's `verify-ca`), not at all without (`prefer` and `require`: the connection is
/// encrypted, its peer unproven). Either way the server must prove it holds the key.
#[derive(Debug)]
struct ShortOfName {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ShortOfName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if let Some(roots) = &self.roots {
            verify_server_cert_signed_by_trust_anchor(
                &ParsedCertificate::try_from(end_entity)?,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a refused certificate means, for the message (rustls's wording names no cure).
pub(super) fn explain(error: &str) -> Option<&'static str> {
    if error.contains("UnknownIssuer") || error.contains("unknown issuer") {
        Some(
            "the server's certificate is not signed by an authority Rivulet trusts: give the database's CA with sslrootcert=PATH",
        )
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        Some(
            "the server's certificate is not issued for the host in the URL: connect by the name it was issued for, or use sslmode=verify-ca",
        )
    } else if error.contains("Expired") || error.contains("expired") {
        Some("the server's certificate has expired")
    } else {
        None
    }
}
