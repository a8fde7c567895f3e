//! Phone number normalisation to E.164 (see the module documentation of [`super`] for
//! the rules).
//!
//! The `phonenumber` crate only ever sees a string we built ourselves: an optional `+`
//! followed by at most [`MAX_DIGITS`] ASCII digits. That keeps its parser on its
//! well-trodden path; the calls are also wrapped in `catch_unwind` because the crate has
//! had panics on odd inputs in the past, and a panic here must not take a node down.

use std::panic;

use phonenumber::country::Id;

use super::InvalidIdentifier;
use super::text::{self, Case};

/// Longest accepted normalised value in bytes: `+`, 15 digits, `;ext=` and 10 digits.
pub(super) const MAX_PHONE_BYTES: usize = 1 + 15 + 5 + MAX_EXTENSION_DIGITS;
/// Most digits accepted before parsing (15 for E.164 plus a trunk or international
/// prefix).
const MAX_DIGITS: usize = 17;
/// Fewest digits worth parsing.
const MIN_DIGITS: usize = 3;
/// Longest accepted extension.
const MAX_EXTENSION_DIGITS: usize = 10;

/// Words that introduce an extension, matched after ASCII lowercasing. Longer markers
/// come before their prefixes.
const EXTENSION_MARKERS: [&str; 9] = [
    ";ext=",
    "extension",
    "ext",
    "x",
    "#",
    "分机",
    "分機",
    "转",
    "轉",
];

/// Normalises one phone number; national numbers are read in `region`.
pub(super) fn normalise(raw: &str, region: Id) -> Result<String, InvalidIdentifier> {
    let text = text::canonical(raw, Case::Keep, MAX_PHONE_BYTES)?.to_ascii_lowercase();
    let text = strip_label(&text);
    let (body, extension) = split_extension(text)?;
    let mut dial = dial_string(body)?;
    if let Some(international) = strip_international_prefix(region, &dial) {
        dial = format!("+{international}");
    }

    let e164 = if dial.starts_with('+') {
        // The default region plays no part for international numbers, so every node
        // reads them the same way whatever its region.
        parse_valid(None, &dial)?
    } else {
        parse_valid(Some(region), &dial)?
    };
    // The output must read back as itself, which makes the rule idempotent (no need to
    // check when the input already was the output).
    if e164 != dial && parse_valid(None, &e164)? != e164 {
        return Err(InvalidIdentifier::InvalidPhone);
    }
    Ok(match extension {
        Some(digits) => format!("{e164};ext={digits}"),
        None => e164,
    })
}

/// Labels that may precede a number, followed by `:` (full-width `：` is `:` after NFKC).
/// `tel` also covers RFC 3966 `tel:` URIs.
const LABELS: [&str; 11] = [
    "tel", "phone", "mobile", "mob", "cell", "电话", "手机", "座机", "固话", "電話", "手機",
];

/// `text` without a leading `label:` from [`LABELS`].
fn strip_label(text: &str) -> &str {
    if let Some((label, rest)) = text.split_once(':')
        && LABELS.contains(&label.trim_matches(char::is_whitespace))
    {
        return rest.trim_matches(char::is_whitespace);
    }
    text
}

/// Splits `number ext 123` into the number and the extension digits.
fn split_extension(text: &str) -> Result<(&str, Option<&str>), InvalidIdentifier> {
    let Some(at) = text.find(|c: char| !is_body_char(c)) else {
        return Ok((text, None));
    };
    let (body, tail) = text.split_at(at);
    let after_marker = EXTENSION_MARKERS
        .iter()
        .find_map(|marker| tail.strip_prefix(marker))
        .ok_or(InvalidIdentifier::InvalidPhoneCharacter)?;
    let digits = after_marker
        .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '.' | ':' | '=' | '-'));
    if digits.is_empty()
        || digits.len() > MAX_EXTENSION_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(InvalidIdentifier::InvalidExtension);
    }
    Ok((body, Some(digits)))
}

/// Digits, whitespace, a `+` and the separators people put between digit groups.
fn is_body_char(c: char) -> bool {
    c.is_ascii_digit() || c == '+' || c.is_whitespace() || is_separator(c)
}

/// `-` `.` `(` `)` `/` and the dashes NFKC leaves alone (U+2010–U+2015, U+2212).
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '-' | '.' | '(' | ')' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}'
    )
}

/// The digits with an optional leading `+`; a leading `00` becomes `+`.
fn dial_string(body: &str) -> Result<String, InvalidIdentifier> {
    let mut dial = String::with_capacity(MAX_DIGITS + 1);
    let mut digits = 0usize;
    for c in body.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits > MAX_DIGITS {
                return Err(InvalidIdentifier::PhoneDigitCount);
            }
            dial.push(c);
        } else if c == '+' {
            if !dial.is_empty() {
                return Err(InvalidIdentifier::InvalidPhoneCharacter);
            }
            dial.push(c);
        }
        // Everything else reaching here is a separator or whitespace: dropped.
    }
    if let Some(international) = dial.strip_prefix("00") {
        dial = format!("+{international}");
        digits -= 2;
    }
    if digits < MIN_DIGITS {
        return Err(InvalidIdentifier::PhoneDigitCount);
    }
    Ok(dial)
}

/// The number after the default region's international call prefix (`011` in the US),
/// if `dial` starts with one. We resolve it here rather than leave it to the
/// `phonenumber` crate, which would go on to read the foreign number with the default
/// region's trunk-prefix rules (a US default turns `011 86 138…` into `+86 38…`).
fn strip_international_prefix(region: Id, dial: &str) -> Option<&str> {
    if dial.starts_with('+') {
        return None;
    }
    let end = panic::catch_unwind(|| {
        let meta = phonenumber::metadata::DATABASE.by_id(region.as_ref())?;
        let found = meta.international_prefix()?.find(dial)?;
        (found.start() == 0).then_some(found.end())
    })
    .ok()
    .flatten()?;
    // As in libphonenumber: a country code never starts with 0, so `0` after the
    // prefix means it was not one.
    dial.get(end..)
        .filter(|rest| !rest.is_empty() && !rest.starts_with('0'))
}

/// Parses `dial` (ASCII, `+`? digits) and formats it as E.164 if it is a valid number.
fn parse_valid(region: Option<Id>, dial: &str) -> Result<String, InvalidIdentifier> {
    let attempt = panic::catch_unwind(|| {
        let number = phonenumber::parse(region, dial).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        Some(format!("+{}{}", number.code().value(), number.national()))
    });
    match attempt {
        Ok(Some(e164)) if is_e164(&e164) => Ok(e164),
        _ => Err(InvalidIdentifier::InvalidPhone),
    }
}

/// `+`, a non-zero digit, then digits: at most 15 digits in all.
fn is_e164(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (MIN_DIGITS..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
