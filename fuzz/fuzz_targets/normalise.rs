//! Arbitrary strings through every identifier normaliser. Never panics; when one
//! succeeds, normalising its output again gives the same value (the properties of
//! `protocol/src/ident/tests.rs`), and a phone number is E.164 whatever region reads it.
//!
//! Input: the first two bytes name the default phone region when they are one the
//! normaliser accepts (else `CN`); the rest, as UTF-8 (lossily), is the raw value. For
//! name+company it is split at the first U+001F, else at its middle character.

#![no_main]

use blindmatch_protocol::ident::{IdentKind, Normaliser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (region, raw) = data.split_at(data.len().min(2));
    let normaliser = std::str::from_utf8(region)
        .ok()
        .and_then(|r| Normaliser::new(r).ok())
        .unwrap_or_default();
    let raw = String::from_utf8_lossy(raw);
    for n in [normaliser, Normaliser::default()] {
        for kind in IdentKind::ALL {
            check_kind(&n, kind, &raw);
        }
        let (name, company) = match raw.split_once('\u{1f}') {
            Some(parts) => parts,
            None => {
                let middle = raw.char_indices().nth(raw.chars().count() / 2);
                raw.split_at(middle.map_or(raw.len(), |(i, _)| i))
            }
        };
        if let Ok(once) = n.name_company(name, company) {
            let (name, company) = once.name_company_parts().expect("name+company has parts");
            let twice = n
                .name_company(name, company)
                .expect("normalised parts accepted");
            assert_eq!(twice.value(), once.value(), "name+company not idempotent");
        }
    }
});

fn check_kind(n: &Normaliser, kind: IdentKind, raw: &str) {
    let once = match n.normalise(kind, raw) {
        Ok(once) => once,
        Err(err) => {
            assert!(!err.code().is_empty() && !err.to_string().is_empty());
            return;
        }
    };
    assert_eq!(once.kind(), kind);
    assert_eq!(
        format!("{once:?}"),
        format!(
            "Identifier {{ kind: {kind:?}, len: {}, .. }}",
            once.value().len()
        ),
        "Debug shows more than kind and length"
    );
    let twice = n
        .normalise(kind, once.value())
        .unwrap_or_else(|e| panic!("{kind}: normalised value rejected on re-normalising: {e}"));
    assert_eq!(twice.value(), once.value(), "{kind} not idempotent");
    if kind == IdentKind::Phone {
        let value = once.value();
        let (e164, _ext) = value.split_once(";ext=").unwrap_or((value, ""));
        assert!(e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()));
        assert!(e164.len() <= 16, "E.164 longer than 15 digits");
        for region in ["CN", "US", "GB"] {
            let other = Normaliser::new(region).expect("known region");
            assert_eq!(
                other.phone(value).as_ref(),
                Ok(&once),
                "phone depends on region"
            );
        }
    }
}
