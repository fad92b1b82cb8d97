//! TLS for `wss://` and `https://` (spec §1.1: the Node SDK accepts only `wss:`).
//!
//! The emulator makes a private CA and a server certificate for `localhost`, `127.0.0.1` and
//! `::1` at start-up (rcgen), or uses a certificate chain and key the user gives (PEM). Clients
//! trust [`crate::emulator::EmulatorHandle::ca_certificate_pem`]. One port serves both plain
//! and TLS connections: a TLS client's first byte is a handshake record (`0x16`), which no
//! HTTP request starts with.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// Where the emulator's certificate comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsCertificate {
    /// A CA and a server certificate made at start-up (valid for `localhost`, `127.0.0.1`,
    /// `::1`); the CA's PEM is [`crate::emulator::EmulatorHandle::ca_certificate_pem`].
    SelfSigned,
    /// A PEM certificate chain (server certificate first) and its PEM private key. `ca_pem`
    /// is what clients should trust (reported by `ca_certificate_pem`), if known.
    Pem {
        /// Certificate chain, PEM.
        cert_chain_pem: String,
        /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
        key_pem: String,
        /// The CA that issued the chain, PEM (optional).
        ca_pem: Option<String>,
    },
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsCertificate::SelfSigned => f.write_str("SelfSigned"),
            // The key is a secret.
            TlsCertificate::Pem { .. } => f.write_str("Pem { .. }"),
        }
    }
}

/// What the server needs: the acceptor, and the CA to hand to clients.
pub(crate) struct Tls {
    pub acceptor: TlsAcceptor,
    pub ca_pem: Option<String>,
}

impl Tls {
    pub(crate) fn new(cert: &TlsCertificate) -> Result<Tls, Error> {
        let (chain, key, ca_pem) = match cert {
            TlsCertificate::SelfSigned => self_signed()?,
            TlsCertificate::Pem {
                cert_chain_pem,
                key_pem,
                ca_pem,
            } => {
                let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::config_caused(format!("emulator TLS certificate: {e}"), e)
                    })?;
                if chain.is_empty() {
                    return Err(Error::config(
                        "emulator TLS certificate: no CERTIFICATE in the PEM",
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|_| Error::config("emulator TLS key: no usable private key"))?;
                (chain, key, ca_pem.clone())
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config_caused(format!("emulator TLS: {e}"), e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::config_caused(format!("emulator TLS certificate/key: {e}"), e))?;
        // HTTP/1.1 only: websocket upgrades need it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem,
        })
    }
}

type Chain = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Option<String>,
);

/// A fresh CA and a server certificate it signed.
fn self_signed() -> Result<Chain, Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| {
        Error::config_caused(format!("emulator TLS certificate generation: {e}"), e)
    };
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "assemblyai-streaming emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;
    let key = PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| Error::config(format!("emulator TLS key: {e}")))?;
    Ok((
        vec![leaf.der().clone(), ca_cert.der().clone()],
        key,
        Some(ca_cert.pem()),
    ))
}
