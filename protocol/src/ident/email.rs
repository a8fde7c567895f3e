//! Email address normalisation (see the module documentation of [`super`] for the rules).

use super::InvalidIdentifier;
use super::text::{self, Case};

/// Longest accepted address, in UTF-8 bytes (RFC 5321 path limit less the brackets).
pub(super) const MAX_EMAIL_BYTES: usize = 254;
/// Longest accepted local part (before the `@`), in UTF-8 bytes (RFC 5321).
pub(super) const MAX_LOCAL_BYTES: usize = 64;
/// Longest accepted domain label, in UTF-8 bytes (RFC 1035).
const MAX_LABEL_BYTES: usize = 63;

/// Normalises one email address.
pub(super) fn normalise(raw: &str) -> Result<String, InvalidIdentifier> {
    let text = text::canonical(raw, Case::Fold, MAX_EMAIL_BYTES)?;
    let mut address = text.as_str();
    if let Some(inner) = address
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
    {
        address = inner.trim_matches(char::is_whitespace);
    }
    // Already lowercase, so this also strips `MAILTO:`.
    if let Some(rest) = address.strip_prefix("mailto:") {
        address = rest.trim_matches(char::is_whitespace);
    }
    if address.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    if address.chars().any(char::is_whitespace) {
        return Err(InvalidIdentifier::ContainsWhitespace);
    }

    let (local, domain) = address
        .split_once('@')
        .ok_or(InvalidIdentifier::MissingAt)?;
    if domain.contains('@') {
        return Err(InvalidIdentifier::MultipleAt);
    }
    check_local(local)?;
    let domain = normalise_domain(domain)?;

    let value = format!("{local}@{domain}");
    if value.len() > MAX_EMAIL_BYTES {
        return Err(InvalidIdentifier::TooLong {
            max: MAX_EMAIL_BYTES,
        });
    }
    Ok(value)
}

/// An unquoted local part: no RFC 5322 specials, dots only between characters.
fn check_local(local: &str) -> Result<(), InvalidIdentifier> {
    if local.is_empty() {
        return Err(InvalidIdentifier::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_BYTES {
        return Err(InvalidIdentifier::LocalPartTooLong {
            max: MAX_LOCAL_BYTES,
        });
    }
    let special = |c: char| {
        matches!(
            c,
            '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
        )
    };
    if local.chars().any(special)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(InvalidIdentifier::InvalidLocalPart);
    }
    Ok(())
}

/// Maps ideographic full stops to `.` (as IDNA does) and checks the labels.
fn normalise_domain(domain: &str) -> Result<String, InvalidIdentifier> {
    // NFKC already turned U+FF0E and U+FF61 into `.` and U+3002.
    let domain: String = domain
        .chars()
        .map(|c| if c == '\u{3002}' { '.' } else { c })
        .collect();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| !is_valid_label(label)) {
        return Err(InvalidIdentifier::InvalidDomain);
    }
    // A numeric top-level label means an IP address or a typo, not a mail domain.
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(InvalidIdentifier::InvalidDomain);
    }
    Ok(domain)
}

/// Letters, digits and inner hyphens; non-ASCII letters and marks are allowed for
/// internationalised domains (compared as written: no Punycode conversion).
fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_BYTES
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || (!c.is_ascii()
                    && (c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c)))
        })
}
