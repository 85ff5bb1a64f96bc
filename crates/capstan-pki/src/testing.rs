//! Helpers shared by this crate's unit tests.

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::{NodeIdentity, NodeRole};

pub(crate) const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

pub(crate) fn node(node_id: &str, role: NodeRole, hosts: &[&str]) -> NodeIdentity {
    NodeIdentity {
        node_id: node_id.into(),
        role,
        cluster_id: "cluster-a".into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

pub(crate) fn der(pem: &str) -> CertificateDer<'static> {
    crate::pem::cert_der_from_pem(pem, "test certificate").expect("test PEM parses")
}

pub(crate) fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    X509Certificate::from_der(der.as_ref())
        .expect("test DER parses")
        .1
}

/// (CN, OU, O) of the subject; empty strings for absent attributes.
pub(crate) fn subject(cert: &X509Certificate<'_>) -> (String, String, String) {
    let s = cert.subject();
    let first = |mut it: Box<dyn Iterator<Item = &_> + '_>| -> String {
        it.next()
            .and_then(|v: &x509_parser::x509::AttributeTypeAndValue<'_>| v.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (
        first(Box::new(s.iter_common_name())),
        first(Box::new(s.iter_organizational_unit())),
        first(Box::new(s.iter_organization())),
    )
}

/// SANs rendered as "dns:name" / "ip:addr".
pub(crate) fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ext) = cert.subject_alternative_name().expect("SAN parses") else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")),
                };
                format!("ip:{ip}")
            }
            other => format!("other:{other:?}"),
        })
        .collect()
}
