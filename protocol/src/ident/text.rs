//! Text canonicalisation shared by every identifier kind.
//!
//! [`canonical`] is the first step of every rule: it bounds the input, removes invisible
//! characters, applies NFKC (optionally with case folding, iterated to a fixed point so
//! that the result is stable), trims Unicode whitespace and rejects characters that have
//! no place in an identifier.

use unicode_normalization::UnicodeNormalization;

use super::InvalidIdentifier;

/// Raw inputs longer than this (in UTF-8 bytes) are rejected before any work is done,
/// which bounds the cost of normalising hostile input.
pub(super) const MAX_INPUT_BYTES: usize = 4096;

/// Rounds of lowercase + NFKC allowed before the text counts as unstable. Real text
/// settles after one round; the bound only guards against pathological input.
const MAX_FOLD_ROUNDS: usize = 4;

/// Whether [`canonical`] lowercases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Case {
    /// Keep letter case (custom identifiers).
    Keep,
    /// Unicode lowercase (emails, names, companies).
    Fold,
}

/// NFKC (and lowercase, if asked) of `raw`, trimmed; rejects empty results, control and
/// bidirectional-formatting characters and unassigned code points. `max` is the limit
/// reported if the raw input is over [`MAX_INPUT_BYTES`].
pub(super) fn canonical(raw: &str, case: Case, max: usize) -> Result<String, InvalidIdentifier> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(InvalidIdentifier::TooLong { max });
    }
    // Invisible characters go before NFKC: removing one later could bring two
    // characters together that NFKC would then compose, breaking idempotence.
    let visible: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
    let mut text: String = visible.nfkc().collect();
    if case == Case::Fold {
        text = fold(text)?;
    }
    let text = text.trim_matches(char::is_whitespace);
    if text.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    for c in text.chars() {
        if is_forbidden_control(c) {
            return Err(InvalidIdentifier::ControlCharacter);
        }
        if !is_assigned(c) {
            return Err(InvalidIdentifier::UnassignedCharacter);
        }
    }
    Ok(text.to_owned())
}

/// Replaces every run of Unicode whitespace with one ASCII space (the text is trimmed).
pub(super) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lowercase then NFKC, until nothing changes. One round is not always enough: a
/// lowercase mapping can produce a sequence NFKC reorders or composes (U+0130 followed by
/// a combining mark below), so a single round would not be idempotent.
fn fold(mut text: String) -> Result<String, InvalidIdentifier> {
    for _ in 0..MAX_FOLD_ROUNDS {
        let next: String = text.to_lowercase().nfkc().collect();
        if next == text {
            return Ok(text);
        }
        text = next;
    }
    Err(InvalidIdentifier::UnstableNormalisation)
}

/// Characters that render as nothing and carry no meaning in an identifier; they are
/// removed: soft hyphen, Mongolian vowel separator, zero-width space/non-joiner/joiner,
/// word joiner and invisible operators, byte-order mark, and variation selectors (so a
/// CJK ideograph with an ideographic variation selector equals the plain ideograph).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// C0/C1 controls (including tab and newline inside the text) and the bidirectional
/// formatting characters that can make text display differently from what it is.
fn is_forbidden_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
        || ('\u{E0000}'..='\u{E007F}').contains(&c)
}

/// Assigned in the Unicode version of our normalisation tables, or private use (rare
/// Chinese name characters are sometimes encoded there). Unassigned code points are
/// rejected because a later Unicode version could give them a decomposition or a case
/// mapping and so change their normal form.
fn is_assigned(c: char) -> bool {
    unicode_normalization::char::is_public_assigned(c)
        || matches!(
            c,
            '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}'
        )
}

/// Whether `c` is written without spaces between words: Han ideographs (and the
/// iteration marks 々 〇), kana, bopomofo and Hangul, plus CJK punctuation and
/// full-width forms that survive NFKC.
pub(super) fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{1100}'..='\u{11FF}'     // Hangul Jamo
            | '\u{2E80}'..='\u{2FDF}' // CJK radicals, Kangxi radicals
            | '\u{3000}'..='\u{303F}' // CJK symbols and punctuation (、。〈〉「」々〇 …)
            | '\u{3040}'..='\u{30FF}' // Hiragana, Katakana
            | '\u{3100}'..='\u{312F}' // Bopomofo
            | '\u{3130}'..='\u{318F}' // Hangul compatibility Jamo
            | '\u{31A0}'..='\u{31BF}' // Bopomofo extended
            | '\u{31C0}'..='\u{31EF}' // CJK strokes
            | '\u{31F0}'..='\u{31FF}' // Katakana phonetic extensions
            | '\u{3400}'..='\u{4DBF}' // CJK extension A
            | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
            | '\u{A960}'..='\u{A97F}' // Hangul Jamo extended-A
            | '\u{AC00}'..='\u{D7FF}' // Hangul syllables, Jamo extended-B
            | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
            | '\u{FE30}'..='\u{FE4F}' // CJK compatibility forms
            | '\u{FF00}'..='\u{FFEF}' // half-width and full-width forms
            | '\u{20000}'..='\u{3FFFF}' // CJK extensions B and later
    )
}
