//! What an error may say about a file's first row without quoting a contact.
//!
//! The first row of a CSV is meant to name the columns, and listing those names is the
//! quickest help when a `--*-col` option is misspelt. But a file without a header row
//! has a contact there, and a file without line breaks has all of them there. So the
//! names are listed only when the row looks like a header: no cell looks like data
//! (an `@`, five or more digits, or more than [`MAX_NAME_CHARS`] characters), and either
//! some asked-for column was found in it or every cell is a plain ASCII column name.
//! Otherwise only the number of columns is given. Listed names are shortened and
//! escaped, and at most [`MAX_NAMES`] of them are shown.

use std::fmt;

use blindmatch_protocol::wire::printable;

/// Longest cell still taken for a column name, in characters.
const MAX_NAME_CHARS: usize = 40;
/// Most column names an error lists.
const MAX_NAMES: usize = 30;

/// A file's first row as an error may describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderSummary {
    /// The row names its columns: the names (escaped), at most [`MAX_NAMES`].
    Named {
        /// The first names, escaped for a terminal.
        names: Vec<String>,
        /// How many more columns there are.
        more: usize,
    },
    /// The row looks like a record, not names of columns: only its width.
    LooksLikeData {
        /// Cells in the row.
        columns: usize,
    },
}

impl HeaderSummary {
    /// Describes `header`; `some_found` says whether any asked-for column is in it.
    pub fn of(header: &[String], some_found: bool) -> Self {
        let plain = |cell: &String| {
            cell.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '.'))
        };
        let named = !header.iter().any(|cell| looks_like_data(cell))
            && (some_found || header.iter().all(plain));
        if !named {
            return HeaderSummary::LooksLikeData {
                columns: header.len(),
            };
        }
        HeaderSummary::Named {
            names: header
                .iter()
                .take(MAX_NAMES)
                .map(|c| printable(c))
                .collect(),
            more: header.len().saturating_sub(MAX_NAMES),
        }
    }
}

impl fmt::Display for HeaderSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderSummary::Named { names, more } => {
                let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                write!(f, "its columns are: {}", quoted.join(", "))?;
                if *more > 0 {
                    write!(f, " and {more} more")?;
                }
                Ok(())
            }
            HeaderSummary::LooksLikeData { columns } => write!(
                f,
                "its first row has {columns} column{} and looks like data, not names of columns (its cells are not shown); the file needs a header row naming its columns (e.g. `id,email,phone`): add one, then name the columns with --id-col, --email-col, --phone-col, ...",
                if *columns == 1 { "" } else { "s" }
            ),
        }
    }
}

/// An email address, a phone number or an id, or a whole line of them.
fn looks_like_data(cell: &str) -> bool {
    cell.contains('@')
        || cell.chars().filter(char::is_ascii_digit).count() >= 5
        || cell.chars().count() > MAX_NAME_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn a_header_is_listed_escaped() {
        let summary = HeaderSummary::of(&row(&["客户编号", "姓名", "mail\u{1b}[2J"]), true);
        let text = summary.to_string();
        assert!(
            text.contains("`客户编号`, `姓名`, `mail\\u{1b}[2J`"),
            "{text}"
        );
        let plain = HeaderSummary::of(&row(&["id", "e-mail", "Phone No."]), false);
        assert!(matches!(plain, HeaderSummary::Named { .. }), "{plain}");
    }

    #[test]
    fn a_contact_is_never_listed() {
        for cells in [
            &["A1", "Zhang Wei", "zhang.wei@yunfan.cn", "138 0013 8000"][..],
            &["13800138000"],
            &["张三", "华为"],
        ] {
            let summary = HeaderSummary::of(&row(cells), false);
            let text = summary.to_string();
            assert!(
                matches!(summary, HeaderSummary::LooksLikeData { columns } if columns == cells.len()),
                "{text}"
            );
            for cell in cells {
                assert!(!text.contains(cell), "{cell} in {text}");
            }
        }
        let found_but_data = HeaderSummary::of(&row(&["id", "a@b.cn"]), true);
        assert!(matches!(
            found_but_data,
            HeaderSummary::LooksLikeData { columns: 2 }
        ));
    }

    #[test]
    fn a_huge_line_is_never_echoed() {
        let line = "x".repeat(1 << 20);
        let text = HeaderSummary::of(&[line], false).to_string();
        assert!(text.len() < 400, "{} bytes", text.len());
        let many: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
        let text = HeaderSummary::of(&many, true).to_string();
        assert!(text.contains("and 470 more"), "{text}");
        assert!(text.len() < 400, "{} bytes", text.len());
    }
}
