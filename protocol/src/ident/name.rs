//! Name + company normalisation (see the module documentation of [`super`] for the
//! rules and the exact suffix lists).

use super::InvalidIdentifier;
use super::text::{self, Case};

/// Longest accepted normalised name, in UTF-8 bytes.
pub(super) const MAX_NAME_BYTES: usize = 256;
/// Longest accepted normalised company, in UTF-8 bytes.
pub(super) const MAX_COMPANY_BYTES: usize = 256;
/// Joins the two parts of the value: U+001F UNIT SEPARATOR, a control character, so it
/// can never occur inside a part.
pub(super) const SEPARATOR: char = '\u{1F}';

/// Parenthesised decorations removed from the end of a company name (after NFKC, so
/// full-width brackets are ASCII here).
pub(super) const COMPANY_DECORATIONS: [&str; 6] =
    ["(中国)", "(中國)", "(china)", "(集团)", "(集團)", "(group)"];

/// Chinese legal-form suffixes removed from the end of a company name, longest first.
pub(super) const COMPANY_SUFFIXES_CJK: [&str; 10] = [
    "股份有限公司",
    "有限责任公司",
    "有限責任公司",
    "集团公司",
    "集團公司",
    "有限公司",
    "股份公司",
    "集团",
    "集團",
    "公司",
];

/// Latin legal-form words removed from the end of a company name when they stand as a
/// word of their own (the character before them is not a Latin letter or digit).
/// Punctuation between them is removed separately, so `Co., Ltd.`, `Co.,Ltd`, `Co. Ltd`
/// and `Co Ltd` all go.
pub(super) const COMPANY_SUFFIXES_LATIN: [&str; 15] = [
    "incorporated",
    "corporation",
    "limited",
    "company",
    "group",
    "l.l.c",
    "gmbh",
    "corp",
    "inc",
    "llc",
    "ltd",
    "plc",
    "pte",
    "ag",
    "co",
];

/// Characters removed from the end of a company name, between suffix removals.
fn is_trailing_junk(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '.' | ',' | ';' | ':' | '-' | '&' | '/' | '\u{00B7}' | '\u{3001}' | '\u{3002}'
        )
}

/// Dots used between the parts of transliterated foreign names (约翰·史密斯), all
/// written as U+00B7 MIDDLE DOT.
fn is_interpunct(c: char) -> bool {
    matches!(
        c,
        '\u{00B7}' | '\u{2022}' | '\u{2027}' | '\u{2219}' | '\u{22C5}' | '\u{30FB}'
    )
}

/// Normalises a name and a company into `name` U+001F `company`.
pub(super) fn normalise(name: &str, company: &str) -> Result<String, InvalidIdentifier> {
    let name = part(name, MAX_NAME_BYTES).map_err(|e| empty_as(e, InvalidIdentifier::EmptyName))?;
    let company =
        company_part(company).map_err(|e| empty_as(e, InvalidIdentifier::EmptyCompany))?;
    Ok(format!("{name}{SEPARATOR}{company}"))
}

/// Normalises a company name on its own (the second half of the value).
fn company_part(raw: &str) -> Result<String, InvalidIdentifier> {
    let mut company = part(raw, MAX_COMPANY_BYTES)?;
    strip_legal_suffixes(&mut company);
    if company.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    Ok(company)
}

/// NFKC, lowercase, trimmed, whitespace collapsed, interpuncts unified and spaces next
/// to CJK characters removed.
fn part(raw: &str, max: usize) -> Result<String, InvalidIdentifier> {
    let text = text::canonical(raw, Case::Fold, max)?;
    let text: String = text::collapse_whitespace(&text)
        .chars()
        .map(|c| if is_interpunct(c) { '\u{00B7}' } else { c })
        .collect();
    let text = remove_cjk_spaces(&text);
    if text.len() > max {
        return Err(InvalidIdentifier::TooLong { max });
    }
    Ok(text)
}

/// Removes each space that has a CJK character on either side: Chinese has no word
/// spaces, and a space between CJK and Latin text is typography ("pangu spacing").
fn remove_cjk_spaces(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            if before.is_some_and(|b| text::is_cjk(*b)) || after.is_some_and(|a| text::is_cjk(*a)) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Repeatedly removes trailing junk, decorations and legal-form suffixes. A suffix is
/// only removed if something is left, so a company called "有限公司" stays as it is.
fn strip_legal_suffixes(company: &mut String) {
    loop {
        // Both lengths are of prefixes obtained from `str` methods, so they fall on
        // character boundaries and `truncate` cannot panic.
        let trimmed_len = company.trim_end_matches(is_trailing_junk).len();
        company.truncate(trimmed_len);
        match without_suffix(company) {
            Some(kept) => company.truncate(kept),
            None => return,
        }
    }
}

/// Length of `company` once its last decoration or legal-form suffix is removed, or
/// `None` if it has none. The first suffix that ends `company` decides: if removing it
/// would leave nothing, nothing is removed (`有限公司` does not become `有限`).
fn without_suffix(company: &str) -> Option<usize> {
    let cjk = COMPANY_DECORATIONS
        .iter()
        .chain(COMPANY_SUFFIXES_CJK.iter())
        .find_map(|suffix| company.strip_suffix(suffix));
    let rest = cjk.or_else(|| {
        COMPANY_SUFFIXES_LATIN.iter().find_map(|word| {
            company.strip_suffix(word).filter(|rest| {
                rest.chars()
                    .next_back()
                    .is_some_and(|before| !before.is_alphanumeric() || text::is_cjk(before))
            })
        })
    })?;
    if rest.trim_end_matches(is_trailing_junk).is_empty() {
        None
    } else {
        Some(rest.len())
    }
}

/// `error`, except that an empty part becomes `empty` (which part was empty).
fn empty_as(error: InvalidIdentifier, empty: InvalidIdentifier) -> InvalidIdentifier {
    match error {
        InvalidIdentifier::Empty => empty,
        other => other,
    }
}

/// Splits a stored `name` U+001F `company` value into its parts.
pub(super) fn split(value: &str) -> Option<(&str, &str)> {
    value.split_once(SEPARATOR)
}
