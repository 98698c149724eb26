//! The messages of `SpiffeWorkloadAPI.FetchX509SVID`, as prost structs written from
//! `workload.proto` (the SPIFFE project's, copied in `tests/spiffe/workload.proto`): only the
//! fields the product reads. Fields not declared here (`crl`, `federated_bundles`, fields a
//! later spec adds) are skipped when decoding, as protobuf requires, so nothing is lost by
//! leaving them out. Written by hand (three messages) so that the build needs no `protoc`.

/// `X509SVIDRequest {}`: no parameters.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub(crate) struct X509SvidRequest {}

/// `X509SVIDResponse`: the complete current set of SVIDs.
#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct X509SvidResponse {
    /// `repeated X509SVID svids = 1;`
    #[prost(message, repeated, tag = "1")]
    pub(crate) svids: Vec<X509Svid>,
}

/// `X509SVID`. Its `Debug` (written below) never shows the key.
#[derive(Clone, PartialEq, ::prost::Message)]
#[prost(skip_debug)]
pub(crate) struct X509Svid {
    /// `string spiffe_id = 1;`
    #[prost(string, tag = "1")]
    pub(crate) spiffe_id: String,
    /// `bytes x509_svid = 2;`: DER certificates, leaf first.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) x509_svid: Vec<u8>,
    /// `bytes x509_svid_key = 3;`: unencrypted PKCS#8 DER.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) x509_svid_key: Vec<u8>,
    /// `bytes bundle = 4;`: the trust domain's CA certificates (not sent to Roles Anywhere).
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) bundle: Vec<u8>,
    /// `string hint = 5;`
    #[prost(string, tag = "5")]
    pub(crate) hint: String,
}

impl std::fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("hint", &self.hint)
            .field("x509_svid_bytes", &self.x509_svid.len())
            .field("x509_svid_key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn wire_format_matches_workload_proto() {
        // Built by hand: field 1 (message) holding fields 1 (string), 2 and 3 (bytes), 5
        // (string); then field 2 (crl, bytes) and field 3 (a map entry) that we skip.
        let svid = [
            &[0x0a, 0x03][..],
            b"a:b",
            &[0x12, 0x02, 0xde, 0xad],
            &[0x1a, 0x01, 0x07],
            &[0x2a, 0x01],
            b"h",
        ]
        .concat();
        let mut wire = vec![0x0a, svid.len() as u8];
        wire.extend_from_slice(&svid);
        wire.extend_from_slice(&[0x12, 0x01, 0x00, 0x1a, 0x05, 0x0a, 0x01, b'k', 0x12, 0x00]);
        let r = X509SvidResponse::decode(wire.as_slice()).unwrap();
        assert_eq!(r.svids.len(), 1);
        let s = &r.svids[0];
        assert_eq!(s.spiffe_id, "a:b");
        assert_eq!(s.x509_svid, [0xde, 0xad]);
        assert_eq!(s.x509_svid_key, [0x07]);
        assert_eq!(s.hint, "h");
        assert!(!format!("{s:?}").contains('7'));
        assert!(X509SvidRequest {}.encode_to_vec().is_empty());
    }
}
