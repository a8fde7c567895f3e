//! Unit and property tests for identifier normalisation. The realistic input tables are
//! in `protocol/tests/golden/ident.json`; these tests cover the API, limits, Unicode edge
//! cases and the properties every rule must have.

use proptest::prelude::*;

use super::*;

fn cn() -> Normaliser {
    Normaliser::default()
}

// --- kinds and kind sets ---

#[test]
fn kind_codes_and_names_round_trip() {
    for (i, kind) in IdentKind::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(kind.code()), i + 1);
        assert_eq!(IdentKind::from_code(kind.code()), Some(kind));
        assert_eq!(kind.name().parse::<IdentKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.name());
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        assert_eq!(serde_json::from_str::<IdentKind>(&json).unwrap(), kind);
    }
    assert_eq!(IdentKind::from_code(0), None);
    assert_eq!(IdentKind::from_code(5), None);
    assert_eq!("Email".parse::<IdentKind>(), Err(UnknownIdentKind));
    assert_eq!("name+company".parse::<IdentKind>(), Err(UnknownIdentKind));
}

#[test]
fn kind_set_bits() {
    let mut set = KindSet::empty();
    assert!(set.is_empty());
    assert_eq!(set.to_string(), "none");
    assert!(set.insert(IdentKind::Phone));
    assert!(!set.insert(IdentKind::Phone));
    assert!(set.insert(IdentKind::Email));
    assert_eq!(set.bits(), 0b0000_0110);
    assert_eq!(set.len(), 2);
    assert!(set.contains(IdentKind::Email) && !set.contains(IdentKind::Custom));
    assert_eq!(set.to_string(), "email+phone");
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [IdentKind::Email, IdentKind::Phone]
    );
    assert_eq!("phone+email".parse::<KindSet>(), Ok(set));
    assert_eq!("none".parse::<KindSet>(), Ok(KindSet::empty()));
    assert!("email+fax".parse::<KindSet>().is_err());
    assert!("".parse::<KindSet>().is_err());
    assert!(set.remove(IdentKind::Email) && !set.remove(IdentKind::Email));
    assert_eq!(KindSet::all().bits(), 0b0001_1110);
    assert_eq!(KindSet::all().iter().collect::<Vec<_>>(), IdentKind::ALL);
    assert!(set.is_subset(KindSet::all()) && !KindSet::all().is_subset(set));
    assert_eq!(
        KindSet::from(IdentKind::Custom).union(set),
        [IdentKind::Phone, IdentKind::Custom].into_iter().collect()
    );
    assert_eq!(KindSet::all().intersection(set), set);
}

#[test]
fn kind_set_from_bits_rejects_unknown_bits() {
    for bits in 0..=u8::MAX {
        let known = bits & !0b0001_1110 == 0;
        assert_eq!(
            KindSet::from_bits(bits).is_some(),
            known,
            "bits {bits:#010b}"
        );
        if let Some(set) = KindSet::from_bits(bits) {
            assert_eq!(set.bits(), bits);
            assert_eq!(set.to_string().parse::<KindSet>(), Ok(set));
        }
    }
}

// --- identifier and normaliser API ---

#[test]
fn debug_redacts_the_value() {
    let id = cn().email("zhang.san@example.cn").unwrap();
    assert_eq!(format!("{id:?}"), "Identifier { kind: Email, len: 20, .. }");
    assert_eq!(id.kind(), IdentKind::Email);
    assert_eq!(id.as_bytes(), b"zhang.san@example.cn");
    assert_eq!(id.name_company_parts(), None);
    let pretty = format!("{:#?}", cn().phone("13800138000").unwrap());
    assert!(!pretty.contains("13800138000"), "{pretty}");
}

#[test]
fn name_company_parts_and_generic_entry_point() {
    let id = cn().name_company("张 三", "华为技术有限公司").unwrap();
    assert_eq!(id.name_company_parts(), Some(("张三", "华为技术")));
    let again = cn().normalise(IdentKind::NameCompany, id.value()).unwrap();
    assert_eq!(again, id);
    assert_eq!(
        cn().normalise(IdentKind::NameCompany, "张三 华为"),
        Err(InvalidIdentifier::MissingNameCompanySeparator)
    );
    // A second separator lands in the company part, where it is a control character.
    assert_eq!(
        cn().normalise(IdentKind::NameCompany, "a\u{1F}b\u{1F}c"),
        Err(InvalidIdentifier::ControlCharacter)
    );
    assert_eq!(
        cn().normalise(IdentKind::Phone, "13800138000")
            .unwrap()
            .value(),
        "+8613800138000"
    );
}

#[test]
fn regions() {
    assert_eq!(Normaliser::default().default_region(), "CN");
    assert_eq!(Normaliser::new("cn").unwrap(), Normaliser::default());
    assert_eq!(Normaliser::new(" US ").unwrap().default_region(), "US");
    for bad in ["", "ZZ", "CHN", "86", "中国", "X\u{0}"] {
        assert_eq!(
            Normaliser::new(bad),
            Err(InvalidIdentifier::UnknownRegion),
            "{bad:?}"
        );
    }
    let us = Normaliser::new("US").unwrap();
    assert_eq!(us.phone("(650) 253-0000").unwrap().value(), "+16502530000");
    assert_eq!(
        us.phone("011 86 138 0013 8000").unwrap().value(),
        "+8613800138000"
    );
    // International numbers do not depend on the default region.
    assert_eq!(us.phone("+86 10 1234 5678"), cn().phone("+86 10 1234 5678"));
    assert_eq!(
        cn().phone("(650) 253-0000"),
        Err(InvalidIdentifier::InvalidPhone)
    );
}

#[test]
fn every_known_region_constructs_and_parses_without_panicking() {
    for code in ('A'..='Z').flat_map(|a| ('A'..='Z').map(move |b| format!("{a}{b}"))) {
        if let Ok(normaliser) = Normaliser::new(&code) {
            for raw in [
                "0",
                "00",
                "011 44 20 7946 0958",
                "0123456789",
                "+1",
                "1234567",
            ] {
                let _ = normaliser.phone(raw);
            }
        }
    }
}

#[test]
fn error_codes_are_distinct_and_messages_fixed() {
    let all = [
        InvalidIdentifier::Empty,
        InvalidIdentifier::TooLong { max: 1 },
        InvalidIdentifier::ControlCharacter,
        InvalidIdentifier::UnassignedCharacter,
        InvalidIdentifier::UnstableNormalisation,
        InvalidIdentifier::ContainsWhitespace,
        InvalidIdentifier::MissingAt,
        InvalidIdentifier::MultipleAt,
        InvalidIdentifier::EmptyLocalPart,
        InvalidIdentifier::LocalPartTooLong { max: 1 },
        InvalidIdentifier::InvalidLocalPart,
        InvalidIdentifier::InvalidDomain,
        InvalidIdentifier::InvalidPhoneCharacter,
        InvalidIdentifier::InvalidExtension,
        InvalidIdentifier::PhoneDigitCount,
        InvalidIdentifier::InvalidPhone,
        InvalidIdentifier::UnknownRegion,
        InvalidIdentifier::EmptyName,
        InvalidIdentifier::EmptyCompany,
        InvalidIdentifier::MissingNameCompanySeparator,
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(InvalidIdentifier::code).collect();
    assert_eq!(codes.len(), all.len());
    for error in &all {
        assert!(!error.to_string().is_empty());
    }
}

// --- limits ---

#[test]
fn length_limits() {
    let local = "a".repeat(64);
    let domain = format!(
        "{}.{}.{}.cn",
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(58)
    );
    let longest = format!("{local}@{domain}");
    assert_eq!(longest.len(), 254);
    assert_eq!(cn().email(&longest).unwrap().value(), longest);
    assert_eq!(
        cn().email(&format!("{local}@e.{domain}")),
        Err(InvalidIdentifier::TooLong { max: 254 })
    );
    assert_eq!(
        cn().email(&format!("a{local}@example.cn")),
        Err(InvalidIdentifier::LocalPartTooLong { max: 64 })
    );
    assert_eq!(
        cn().email(&format!("zhang@{}.cn", "x".repeat(64))),
        Err(InvalidIdentifier::InvalidDomain)
    );

    assert!(cn().custom(&"x".repeat(256)).is_ok());
    assert_eq!(
        cn().custom(&"x".repeat(257)),
        Err(InvalidIdentifier::TooLong { max: 256 })
    );
    assert_eq!(
        cn().custom(&"客".repeat(86)),
        Err(InvalidIdentifier::TooLong { max: 256 })
    );

    assert!(
        cn().name_company(&"a".repeat(256), &"b".repeat(256))
            .is_ok()
    );
    assert_eq!(
        cn().name_company(&"a".repeat(257), "b"),
        Err(InvalidIdentifier::TooLong { max: 256 })
    );
    assert_eq!(
        cn().name_company("a", &"b".repeat(257)),
        Err(InvalidIdentifier::TooLong { max: 256 })
    );

    // Raw input is bounded before any work, even if it would trim to something short.
    let padded = format!("{}zhang@example.cn", " ".repeat(5000));
    assert_eq!(
        cn().email(&padded),
        Err(InvalidIdentifier::TooLong { max: 254 })
    );
    let padded = format!("{}13800138000", " ".repeat(5000));
    assert!(matches!(
        cn().phone(&padded),
        Err(InvalidIdentifier::TooLong { .. })
    ));
    // …but 4 KiB of padding is fine.
    let padded = format!("{}zhang@example.cn", " ".repeat(4000));
    assert!(cn().email(&padded).is_ok());
}

#[test]
fn phone_extension_and_digit_limits() {
    assert_eq!(
        cn().phone("13800138000 ext 1234567890").unwrap().value(),
        "+8613800138000;ext=1234567890"
    );
    assert_eq!(
        cn().phone("13800138000 ext 12345678901"),
        Err(InvalidIdentifier::InvalidExtension)
    );
    assert_eq!(
        cn().phone(&"1".repeat(18)),
        Err(InvalidIdentifier::PhoneDigitCount)
    );
    assert_eq!(
        cn().phone(&"9".repeat(17)),
        Err(InvalidIdentifier::InvalidPhone)
    );
    assert_eq!(
        cn().phone("+0086 138 0013 8000"),
        Err(InvalidIdentifier::InvalidPhone)
    );
    assert_eq!(cn().phone("00"), Err(InvalidIdentifier::PhoneDigitCount));
}

// --- Unicode edge cases ---

#[test]
fn unicode_edge_cases() {
    // Case folding can need a second NFKC round: İ + combining grave below.
    let custom = "\u{0130}\u{0316}x@example.cn";
    let once = cn().email(custom).unwrap();
    assert_eq!(cn().email(once.value()).unwrap(), once);
    // Mathematical bold letters are only lowercased after NFKC.
    assert_eq!(
        cn().email("𝐙𝐇𝐀𝐍𝐆@example.cn").unwrap().value(),
        "zhang@example.cn"
    );
    // Kelvin sign and Roman numerals.
    assert_eq!(cn().custom("\u{212A}\u{2163}").unwrap().value(), "KIV");
    // Ideographic variation selectors are dropped: 葛 with and without IVS are equal.
    assert_eq!(
        cn().name_company("葛\u{E0100}亮", "x"),
        cn().name_company("葛亮", "x")
    );
    // CJK compatibility ideographs become their unified form.
    assert_eq!(cn().custom("\u{F900}").unwrap().value(), "\u{8C48}");
    // Private use is allowed (rare name characters), unassigned and noncharacters are not.
    assert!(cn().name_company("王\u{E000}", "x").is_ok());
    assert_eq!(
        cn().custom("\u{FFFF}"),
        Err(InvalidIdentifier::UnassignedCharacter)
    );
    // Bidi isolates, C1 controls and tag characters are rejected; the LRM too.
    for c in ['\u{2066}', '\u{0085}', '\u{E0041}', '\u{200E}', '\u{007F}'] {
        assert_eq!(
            cn().custom(&format!("ab{c}cd")),
            Err(InvalidIdentifier::ControlCharacter),
            "{:04X}",
            u32::from(c)
        );
    }
    // A separator character inside a part cannot forge a different split.
    assert_eq!(
        cn().name_company("a\u{1F}b", "c"),
        Err(InvalidIdentifier::ControlCharacter)
    );
}

#[test]
fn company_suffix_edge_cases() {
    let company = |raw: &str| {
        cn().name_company("n", raw)
            .map(|id| id.name_company_parts().map(|(_, c)| c.to_owned()))
    };
    assert_eq!(company("Co.").unwrap().as_deref(), Some("co"));
    assert_eq!(company("Limited").unwrap().as_deref(), Some("limited"));
    assert_eq!(company("集团有限公司").unwrap().as_deref(), Some("集团"));
    assert_eq!(company("ABC Co Co Ltd").unwrap().as_deref(), Some("abc"));
    assert_eq!(company("Eco").unwrap().as_deref(), Some("eco"));
    assert_eq!(company("(中国)").unwrap().as_deref(), Some("(中国)"));
    assert_eq!(company("AB（China）").unwrap().as_deref(), Some("ab"));
    assert_eq!(company("华为co.,ltd").unwrap().as_deref(), Some("华为"));
    // Removing `co` would leave only junk, so it stays.
    assert_eq!(company("& Co.").unwrap().as_deref(), Some("& co"));
    assert_eq!(company("..."), Err(InvalidIdentifier::EmptyCompany));
}

// --- properties ---

/// Arbitrary strings weighted towards the characters the rules care about.
fn messy_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        "[a-zA-Z0-9]{1,6}",
        "[0-9]{1,11}",
        "[@.+()/# -]",
        Just("＠".to_owned()),
        Just("．".to_owned()),
        Just("。".to_owned()),
        Just("\u{3000}".to_owned()),
        Just("\u{200B}".to_owned()),
        Just("\u{1F}".to_owned()),
        Just("mailto:".to_owned()),
        Just("tel:".to_owned()),
        Just("ext".to_owned()),
        Just("转".to_owned()),
        Just("+86".to_owned()),
        Just("0086".to_owned()),
        Just("１３８".to_owned()),
        Just("有限公司".to_owned()),
        Just("(中国)".to_owned()),
        Just(" Co., Ltd.".to_owned()),
        Just("张三".to_owned()),
        Just("\u{0130}".to_owned()),
        Just("\u{0316}".to_owned()),
        Just("Σ".to_owned()),
        Just("\u{FDFA}".to_owned()),
        "[\u{0300}-\u{036F}]",
        "[\u{1100}-\u{11FF}]",
        "[\u{4E00}-\u{4E20}]",
        "[\u{FF01}-\u{FF5E}]",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Strings that often are valid phone numbers.
fn phone_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(""),
            Just("+86 "),
            Just("0086"),
            Just("+"),
            Just("00"),
            Just("0"),
            Just("tel:")
        ],
        prop_oneof![
            "1[3-9][0-9]{9}",
            "0[1-9][0-9]{1,2}-[2-8][0-9]{6,7}",
            "[0-9 ()./-]{0,20}",
            "[0-9]{1,18}"
        ],
        prop_oneof![
            Just(""),
            Just(" ext 12"),
            Just("转8001"),
            Just(";ext=7"),
            Just("#")
        ],
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn assert_idempotent(kind: IdentKind, raw: &str) {
    if let Ok(once) = cn().normalise(kind, raw) {
        let twice = cn()
            .normalise(kind, once.value())
            .unwrap_or_else(|e| panic!("{kind}: normalised value rejected on re-normalising: {e}"));
        assert_eq!(twice.value(), once.value(), "{kind} not idempotent");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_unicode(raw in any::<String>(), other in any::<String>()) {
        for kind in IdentKind::ALL {
            let _ = cn().normalise(kind, &raw);
        }
        let _ = cn().name_company(&raw, &other);
    }

    #[test]
    fn every_kind_is_idempotent(raw in messy_text()) {
        for kind in IdentKind::ALL {
            assert_idempotent(kind, &raw);
        }
    }

    #[test]
    fn name_company_is_idempotent(name in messy_text(), company in messy_text()) {
        if let Ok(once) = cn().name_company(&name, &company) {
            let (n, c) = once.name_company_parts().expect("name_company has parts");
            let twice = cn().name_company(n, c).expect("normalised parts accepted");
            prop_assert_eq!(twice.value(), once.value());
        }
    }

    #[test]
    fn phone_output_is_e164_and_renormalises_to_itself(raw in phone_like()) {
        if let Ok(once) = cn().phone(&raw) {
            let (e164, _ext) = once.value().split_once(";ext=").unwrap_or((once.value(), ""));
            prop_assert!(e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(e164.len() <= 16);
            prop_assert_eq!(cn().phone(once.value()), Ok(once.clone()));
            // …whatever the default region.
            let us = Normaliser::new("US").expect("known region");
            prop_assert_eq!(us.phone(once.value()), Ok(once.clone()));
        }
    }

    #[test]
    fn phone_never_panics_on_digit_strings(region in prop::sample::select(vec!["CN", "US", "GB", "DE", "IT", "JP", "HK", "TW", "SG", "CH", "BR", "IN"]), raw in "[+]?[0-9 #x-]{0,24}") {
        let normaliser = Normaliser::new(region).expect("known region");
        let _ = normaliser.phone(&raw);
    }

    #[test]
    fn debug_and_errors_never_show_the_value(raw in messy_text()) {
        for kind in IdentKind::ALL {
            match cn().normalise(kind, &raw) {
                Ok(id) => prop_assert_eq!(
                    format!("{id:?}"),
                    format!("Identifier {{ kind: {:?}, len: {}, .. }}", id.kind(), id.value().len())
                ),
                Err(e) => {
                    let marked = format!("qzx{raw}");
                    let message = cn().normalise(kind, &marked).err().map(|e| e.to_string()).unwrap_or_default();
                    prop_assert!(!message.to_lowercase().contains("qzx"));
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}
