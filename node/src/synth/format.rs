//! How each list writes a value. Side A is an enterprise CRM export typed in by sales
//! staff (every format people use); side B is a data provider's list (machine formats,
//! international numbers). Every "same" variant normalises to the same identifier as the
//! plain value; the "broken" variants never normalise at all.

use rand::RngExt;
use rand::rngs::StdRng;

use super::tables::{CN_FORMS, EN_FORMS};
use super::world::{Company, pick, pick_weighted};

/// Which list a record is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The CRM export.
    A,
    /// The provider's list.
    B,
}

/// Full-width form of the printable ASCII in `text` (`138` → `１３８`, space → U+3000).
pub(super) fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => '\u{3000}',
            '!'..='~' => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// A mobile number as the side writes it; `messy` draws from the side's many formats.
pub(super) fn mobile(rng: &mut StdRng, number: u64, side: Side, messy: bool) -> String {
    let s = number.to_string();
    // `number` has 11 digits, so these ranges are in bounds.
    let (p1, p2, p3) = (&s[..3], &s[3..7], &s[7..]);
    if !messy {
        return match side {
            Side::A => s,
            Side::B => format!("+86{s}"),
        };
    }
    match side {
        Side::A => match pick_weighted(rng, &[40, 12, 12, 8, 5, 4, 5, 3, 4, 4, 3]) {
            0 => s,
            1 => format!("{p1}-{p2}-{p3}"),
            2 => format!("{p1} {p2} {p3}"),
            3 => format!("+86 {p1} {p2} {p3}"),
            4 => format!("+86-{s}"),
            5 => format!("(+86){s}"),
            6 => full_width(&s),
            7 => format!("手机：{s}"),
            8 => format!(" {s} "),
            9 => format!("+86 {p1}-{p2}-{p3}"),
            _ => format!("0086 {s}"),
        },
        Side::B => match pick_weighted(rng, &[30, 15, 15, 10, 8, 8, 4, 5, 5]) {
            0 => format!("+86{s}"),
            1 => format!("+86 {s}"),
            2 => format!("+86 {p1}-{p2}-{p3}"),
            3 => format!("0086 {s}"),
            4 => format!("0086-{p1}-{p2}-{p3}"),
            5 => format!("86{s}"),
            6 => format!("86-{s}"),
            7 => format!("tel:+86-{p1}-{p2}-{p3}"),
            _ => s,
        },
    }
}

/// A mobile number mistyped so that it is not a phone number at all.
pub(super) fn broken_mobile(rng: &mut StdRng, number: u64) -> String {
    let s = number.to_string();
    match rng.random_range(0..3) {
        // A letter O for a digit.
        0 => format!("{}O{}", &s[..5], &s[6..]),
        // Two numbers in one cell.
        1 => format!(
            "{s} / 1{}",
            rng.random_range(3_000_000_000u64..9_999_999_999)
        ),
        // A note instead of a number.
        _ => format!("{}待确认", &s[..7]),
    }
}

/// An email address as the side writes it.
pub(super) fn email(rng: &mut StdRng, address: &str, side: Side, messy: bool) -> String {
    if !messy {
        return address.to_owned();
    }
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    match side {
        Side::A => match pick_weighted(rng, &[45, 10, 6, 8, 6, 5, 4, 3, 3, 2]) {
            0 => address.to_owned(),
            1 => format!("{}@{domain}", capitalise_parts(local)),
            2 => address.to_uppercase(),
            3 => format!(" {address} "),
            4 => format!("{local}＠{domain}"),
            5 => format!("mailto:{address}"),
            6 => format!("<{address}>"),
            7 => full_width(address),
            8 => format!("{local}@{}", domain.replacen('.', "。", 1)),
            _ => format!("{address}\u{200B}"),
        },
        Side::B => match pick_weighted(rng, &[60, 10, 10, 5, 10]) {
            0 => address.to_owned(),
            1 => address.to_uppercase(),
            2 => format!("mailto:{address}"),
            3 => format!("  {address}"),
            _ => format!("{}@{}", capitalise_parts(local), domain.to_uppercase()),
        },
    }
}

/// `zhang.wei` → `Zhang.Wei`.
fn capitalise_parts(local: &str) -> String {
    local
        .split('.')
        .map(super::world::capitalise)
        .collect::<Vec<_>>()
        .join(".")
}

/// An email address mistyped so that it is not an address at all.
pub(super) fn broken_email(rng: &mut StdRng, address: &str, name: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, "x"));
    let first_label = domain.split('.').next().unwrap_or(domain);
    match rng.random_range(0..6) {
        0 => format!("{local}@@{domain}"),
        1 => format!("{local}@{first_label}"),
        2 => format!("{name} <{address}>"),
        3 => format!("{address}; {local}@163.com"),
        4 => format!("{local}.@{domain}"),
        _ => format!("{local} {domain}"),
    }
}

/// A person's name (in the written form `form`) as the side writes it.
pub(super) fn name(rng: &mut StdRng, form: &str, hanzi: bool, side: Side, messy: bool) -> String {
    if !messy {
        return form.to_owned();
    }
    if hanzi {
        // A space between surname and given name (removed between CJK characters).
        let spaced = |sep: &str| {
            let mut chars = form.chars();
            let first: String = chars.next().into_iter().collect();
            format!("{first}{sep}{}", chars.as_str())
        };
        match side {
            Side::A => match pick_weighted(rng, &[80, 8, 6, 3, 3]) {
                0 => form.to_owned(),
                1 => spaced(" "),
                2 => format!("{form} "),
                3 => spaced("\u{3000}"),
                _ => format!("\u{FEFF}{form}"),
            },
            Side::B => match pick_weighted(rng, &[90, 10]) {
                0 => form.to_owned(),
                _ => spaced(" "),
            },
        }
    } else {
        let upper_first = || match form.split_once(' ') {
            Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
            None => form.to_uppercase(),
        };
        match side {
            Side::A => match pick_weighted(rng, &[70, 10, 10, 5, 5]) {
                0 => form.to_owned(),
                1 => form.to_uppercase(),
                2 => form.to_lowercase(),
                3 => form.replacen(' ', "  ", 1),
                _ => full_width(form),
            },
            Side::B => match pick_weighted(rng, &[60, 20, 20]) {
                0 => form.to_owned(),
                1 => upper_first(),
                _ => form.to_lowercase(),
            },
        }
    }
}

/// A company (written form `core`, without legal form) as the side writes it.
pub(super) fn company(
    rng: &mut StdRng,
    company: &Company,
    core: &str,
    chinese: bool,
    side: Side,
    messy: bool,
) -> String {
    if chinese {
        if !messy {
            return format!("{core}{}", company.cn_form);
        }
        let other_form = CN_FORMS[rng.random_range(0..CN_FORMS.len())].0;
        let weights: &[u32] = match side {
            Side::A => &[60, 15, 10, 5, 3, 2, 5],
            Side::B => &[75, 20, 5, 0, 0, 0, 0],
        };
        match pick_weighted(rng, weights) {
            0 => format!("{core}{}", company.cn_form),
            1 => core.to_owned(),
            2 => format!("{core}{other_form}"),
            3 => format!("{core}{} ", company.cn_form),
            4 => format!("{core}（中国）有限公司"),
            5 => format!("{core}有限公司。"),
            _ => format!("{core}(集团)有限公司"),
        }
    } else {
        if !messy {
            return format!("{core} Co., Ltd.");
        }
        let form = pick(rng, EN_FORMS);
        let weights: &[u32] = match side {
            Side::A => &[70, 15, 15],
            Side::B => &[80, 10, 10],
        };
        match pick_weighted(rng, weights) {
            0 => format!("{core} {form}"),
            1 => core.to_owned(),
            _ => format!("{core} {form}").to_uppercase(),
        }
    }
}
