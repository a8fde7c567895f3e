//! Property tests: the store round-trips and never panics on bad bytes; the decoder
//! keeps text intact apart from line ends.

use proptest::prelude::*;

use blindmatch_protocol::ident::{IdentKind, NORMALISATION_VERSION};

use super::super::input::DecodingReader;
use super::super::store::{self, StoredRecord};
use super::*;

fn meta_for(records: u64) -> DatasetMeta {
    DatasetMeta {
        name: "p".into(),
        imported_at: "2025-01-01T00:00:00Z".into(),
        input_file: "p.csv".into(),
        input_sha256: String::new(),
        encoding: InputEncoding::Utf8,
        region: "CN".into(),
        normalisation_version: NORMALISATION_VERSION,
        columns: ColumnMapping::default(),
        counts: ImportCounts {
            accepted: records,
            ..ImportCounts::default()
        },
        kinds: Vec::new(),
        provenance: ProvenanceCounts::default(),
        rejects_sha256: String::new(),
        version: String::new(),
    }
}

fn record() -> impl Strategy<Value = StoredRecord> {
    let kind = prop::sample::select(IdentKind::ALL.to_vec());
    (
        ".{0,12}",
        prop::collection::vec((kind, ".{0,40}"), 1..5),
        prop::option::of(".{0,8}"),
        prop::option::of(".{0,8}"),
        prop::option::of(".{0,300}"),
    )
        .prop_map(
            |(id, identifiers, legal_basis, consent, source)| StoredRecord {
                id,
                identifiers,
                legal_basis,
                consent,
                source,
            },
        )
}

fn decode_text(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut DecodingReader::new(bytes, InputEncoding::Utf8),
        &mut out,
    )
    .unwrap();
    out
}

proptest! {
    #[test]
    fn records_round_trip(records in prop::collection::vec(record(), 0..40)) {
        let mut body = Vec::new();
        for record in &records {
            super::super::codec::encode_record(&mut body, record);
        }
        let bytes = store::encode_file(&meta_for(records.len() as u64), body).unwrap();
        let dataset = store::decode(Path::new("p.bmds"), bytes).unwrap();
        prop_assert_eq!(dataset.records().collect::<Vec<_>>(), records);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        tail in prop::collection::vec(any::<u8>(), 0..512),
        meta_len in 0u32..600,
        reseal in any::<bool>(),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&NORMALISATION_VERSION.to_le_bytes());
        bytes.extend_from_slice(&meta_len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        if reseal && bytes.len() >= 48 {
            super::reseal(&mut bytes);
        }
        let _ = store::decode(Path::new("p.bmds"), bytes);
    }

    #[test]
    fn utf8_text_decodes_to_itself_with_lf_line_ends(text in "[a-z,\"\r\n张三ａ]{0,200}") {
        let mut expected = text.replace("\r\n", "\n").into_bytes();
        if expected.last().is_some_and(|byte| *byte != b'\n') {
            expected.push(b'\n');
        }
        prop_assert_eq!(decode_text(text.as_bytes()), expected);
    }

    #[test]
    fn arbitrary_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let out = decode_text(&bytes);
        // Valid UTF-8 apart from markers for malformed input.
        let cleaned: Vec<u8> = out.into_iter().filter(|b| *b != 0xFF).collect();
        prop_assert!(std::str::from_utf8(&cleaned).is_ok());
    }
}
