//! Import: counts, rejects report, encodings, columns, failures.

use std::fs;

use blindmatch_protocol::ident::{IdentKind, NORMALISATION_VERSION};
use sha2::{Digest, Sha256};

use super::*;

#[test]
fn messy_csv_imports_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "crm export.csv", MESSY_CSV.as_bytes());
    let data = dir.path().join("data");
    let report = run_import(&data, &messy_options(&input, "crm")).unwrap();

    assert_eq!(report.rows, 14);
    assert_eq!(report.accepted, 9);
    assert_eq!(report.rejected_rows, 4);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.rejected_values, 5);
    assert_eq!(report.identifiers, 25);
    assert_eq!(
        report.input_sha256,
        hex::encode(Sha256::digest(MESSY_CSV.as_bytes()))
    );
    assert_eq!(report.normalisation_version, NORMALISATION_VERSION);
    assert_eq!(report.report_path, rejects_path(&data, "crm"));
    assert_eq!(stored_files(&data), ["crm.bmds", "crm.rejects.csv"]);
    let summary = report.to_string();
    assert!(summary.contains("crm.rejects.csv"), "{summary}");
    for value in REJECTED_VALUES {
        assert!(!summary.contains(value), "summary leaks {value}: {summary}");
    }

    let dataset = Dataset::load(&data, "crm").unwrap();
    assert_eq!(
        ids(&dataset),
        [
            "C001", "C002", "C003", "C004", "C007", "C008", "C009", "C010", "C012"
        ]
    );
    let record = |id: &str| dataset.records().find(|r| r.id == id).unwrap();
    let has = |id: &str, kind: IdentKind, value: &str| {
        record(id)
            .identifiers
            .iter()
            .any(|(k, v)| *k == kind && v == value)
    };
    assert!(has("C001", IdentKind::Email, "zhang.san@huawei.com"));
    assert!(has("C001", IdentKind::Phone, "+8613800138000"));
    assert!(has("C001", IdentKind::NameCompany, "张三\u{1f}华为技术"));
    assert!(has("C002", IdentKind::Email, "li.si@alibaba.com"));
    assert!(has("C002", IdentKind::Email, "lisi@gmail.com"));
    assert!(has("C002", IdentKind::Phone, "+8613900139000"));
    assert!(has("C007", IdentKind::Phone, "+8613600136000"));
    assert!(has("C010", IdentKind::Phone, "+16502530000"));
    assert!(has("C012", IdentKind::Phone, "+8613800138001"));
    // The same address in two columns of one record is stored once.
    assert_eq!(record("C008").identifiers.len(), 3);
    assert_eq!(record("C003").identifiers.len(), 2);
    assert_eq!(record("C004").identifiers.len(), 1);
    assert_eq!(record("C001").source.as_deref(), Some("展会"));
    assert_eq!(record("C002").legal_basis.as_deref(), Some("同意"));
    assert_eq!(record("C003").source, None);
    assert_eq!(record("C001").consent, None);

    let meta = dataset.meta();
    assert_eq!(meta.name, "crm");
    assert_eq!(meta.input_file, "crm export.csv");
    assert_eq!(meta.counts, report.counts());
    assert_eq!(meta.provenance.source, 2);
    assert_eq!(meta.provenance.legal_basis, 2);
    assert_eq!(
        meta.kinds,
        [IdentKind::Email, IdentKind::Phone, IdentKind::NameCompany]
    );
    assert_eq!(meta.columns.email, ["邮箱", "备用邮箱"]);
    assert!(humantime::parse_rfc3339(&meta.imported_at).is_ok());
    // C008 and C009 share a phone number: one element, both records.
    assert_eq!(dataset.prepared_set().len(), 24);
    assert_eq!(dataset.prepared_set().record_count(), 9);
}

#[test]
fn rejects_report_has_row_line_column_reason_and_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    let data = dir.path().join("data");
    let report = run_import(&data, &messy_options(&input, "crm")).unwrap();
    let text = fs::read_to_string(&report.report_path).unwrap();
    for value in REJECTED_VALUES {
        assert!(!text.contains(value), "report leaks {value}:\n{text}");
    }

    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["row", "line", "column", "code", "reason"]
    );
    let lines: Vec<(u64, u64, String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].to_owned(),
                r[3].to_owned(),
            )
        })
        .collect();
    let find = |row: u64, column: &str| {
        lines
            .iter()
            .find(|(r, _, c, _)| *r == row && c == column)
            .unwrap_or_else(|| panic!("no line for row {row} column {column}:\n{text}"))
            .3
            .clone()
    };
    assert_eq!(find(3, "邮箱"), "invalid_domain");
    assert_eq!(find(4, "邮箱"), "missing_at");
    assert_eq!(find(5, "邮箱"), "multiple_at");
    find(4, "手机");
    find(5, "手机");
    assert_eq!(find(5, ""), "no_valid_identifier");
    assert_eq!(find(6, "客户编号"), "duplicate_id");
    assert_eq!(find(7, ""), "no_identifier");
    assert_eq!(find(8, "客户编号"), "empty_id");
    assert_eq!(find(13, ""), "field_count");
    assert_eq!(lines.len(), 10);
    // Line numbers count the header as line 1.
    assert!(
        lines.iter().all(|(row, line, _, _)| *line == row + 1),
        "{text}"
    );
    // Every line has a reason in words.
    assert!(text.lines().skip(1).all(|l| l.split(',').count() >= 5));
    assert_eq!(
        hex::encode(Sha256::digest(text.as_bytes())),
        Dataset::load(&data, "crm").unwrap().meta().rejects_sha256
    );

    let first = &report.rejection_reasons[0];
    assert!(first.count >= 1);
    let total: u64 = report.rejection_reasons.iter().map(|r| r.count).sum();
    assert_eq!(total, 10);
}

#[test]
fn gb18030_input_gives_the_same_dataset_as_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let utf8 = write_input(dir.path(), "utf8.csv", MESSY_CSV.as_bytes());
    let text = MESSY_CSV.trim_start_matches('\u{feff}');
    let (encoded, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&encoded).is_err(), "really not UTF-8");
    let gb = write_input(dir.path(), "gb.csv", &encoded);

    let from_utf8 = run_import(&data, &messy_options(&utf8, "a")).unwrap();
    let mut opts = messy_options(&gb, "b");
    opts.encoding = InputEncoding::Gb18030;
    let from_gb = run_import(&data, &opts).unwrap();

    assert_eq!(from_utf8.counts(), from_gb.counts());
    assert_eq!(from_gb.input_sha256, hex::encode(Sha256::digest(&encoded)));
    let a = Dataset::load(&data, "a").unwrap();
    let b = Dataset::load(&data, "b").unwrap();
    assert!(a.records().eq(b.records()));
    assert_eq!(b.meta().encoding, InputEncoding::Gb18030);
    assert_eq!(
        fs::read(from_utf8.report_path).unwrap(),
        fs::read(from_gb.report_path).unwrap()
    );
}

#[test]
fn gb18030_read_as_utf8_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = MESSY_CSV.trim_start_matches('\u{feff}');
    let (encoded, _, _) = encoding_rs::GB18030.encode(text);
    let gb = write_input(dir.path(), "gb.csv", &encoded);
    let err = run_import(&data, &messy_options(&gb, "crm")).unwrap_err();
    assert!(
        matches!(err, DatasetError::InvalidEncoding { row: None, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("header row"), "{message}");
    assert!(message.contains("--encoding gb18030"), "{message}");

    // ASCII header, Chinese in row 3 only.
    let mut bytes = b"id,name,company,email\n1,a,b,a@b.cn\n2,c,d,c@d.cn\n".to_vec();
    bytes.extend_from_slice(&encoding_rs::GB18030.encode("3,张三,华为,z@h.cn\n").0);
    let input = write_input(dir.path(), "mixed.csv", &bytes);
    let mut opts = ImportOptions::new(&input, "crm");
    opts.email_cols = vec!["email".into()];
    let message = run_import(&data, &opts).unwrap_err().to_string();
    assert!(message.contains("row 3 (line 4)"), "{message}");
    assert!(message.contains("not valid UTF-8"), "{message}");
    assert!(message.contains("--encoding gb18030"), "{message}");
    assert!(!data.join(DATASETS_DIR).join("crm.bmds").exists());
}

#[test]
fn missing_columns_are_named_with_the_header_listed() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    let mut opts = messy_options(&input, "crm");
    opts.email_cols.push("Email".into());
    opts.consent_col = Some("同意书".into());
    let err = run_import(&dir.path().join("data"), &opts).unwrap_err();
    let DatasetError::MissingColumns {
        missing,
        header: HeaderSummary::Named { names, more },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &["Email", "同意书"]);
    assert_eq!((names.len(), *more), (8, 0));
    assert_eq!(names[0], "客户编号", "BOM stripped from the first column");
    let message = err.to_string();
    assert!(message.contains("`Email`"), "{message}");
    assert!(
        message.contains("`客户编号`, `姓名`, `公司`, `邮箱`"),
        "{message}"
    );
}

#[test]
fn columns_match_ignoring_case_and_surrounding_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "c.csv", b" ID , E-Mail \n7,a@b.cn\n");
    let mut opts = ImportOptions::new(&input, "c");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["e-mail".into()];
    let data = dir.path().join("data");
    run_import(&data, &opts).unwrap();
    assert_eq!(ids(&Dataset::load(&data, "c").unwrap()), ["7"]);

    let input = write_input(dir.path(), "dup.csv", b"email,Email\na@b.cn,c@d.cn\n");
    let mut opts = ImportOptions::new(&input, "c");
    opts.email_cols = vec!["EMAIL".into()];
    let err = run_import(&data, &opts).unwrap_err();
    assert!(
        matches!(err, DatasetError::AmbiguousColumn { count: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn empty_and_header_only_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (file, bytes) in [
        ("empty.csv", &b""[..]),
        ("bom.csv", b"\xEF\xBB\xBF\r\n\r\n"),
    ] {
        let input = write_input(dir.path(), file, bytes);
        let mut opts = ImportOptions::new(&input, "x");
        opts.email_cols = vec!["email".into()];
        let err = run_import(&data, &opts).unwrap_err();
        assert!(matches!(err, DatasetError::EmptyInput { .. }), "{err:?}");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
    let input = write_input(dir.path(), "header.csv", b"id,email\r\n");
    let mut opts = ImportOptions::new(&input, "x");
    opts.email_cols = vec!["email".into()];
    let err = run_import(&data, &opts).unwrap_err();
    assert!(matches!(err, DatasetError::NoDataRows { .. }), "{err:?}");
    assert!(err.to_string().contains("no data rows"), "{err}");
}

#[test]
fn a_file_with_no_valid_row_stores_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "x.csv", b"email\nnope\nstill nope\n");
    let mut opts = ImportOptions::new(&input, "x");
    opts.email_cols = vec!["email".into()];
    let data = dir.path().join("data");
    let message = run_import(&data, &opts).unwrap_err().to_string();
    assert!(message.contains("none of its 2 rows"), "{message}");
    assert!(message.contains("`email`"), "{message}");
    assert!(!message.contains("nope"), "{message}");
    assert!(!dataset_path(&data, "x").exists());
}

#[test]
fn failed_imports_leave_the_stored_dataset_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    run_import(&data, &messy_options(&input, "crm")).unwrap();
    let dataset_before = fs::read(dataset_path(&data, "crm")).unwrap();
    let report_before = fs::read(rejects_path(&data, "crm")).unwrap();

    // A missing column.
    let mut opts = messy_options(&input, "crm");
    opts.phone_cols = vec!["座机".into()];
    assert!(run_import(&data, &opts).is_err());
    // Invalid UTF-8 after thousands of good rows.
    let mut bytes = MESSY_CSV.as_bytes().to_vec();
    for i in 0..5000 {
        bytes.extend_from_slice(format!("N{i},某人,某公司,p{i}@example.cn,,,,\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"BAD,\xD5\xC5\xC8\xFD,x,bad@example.cn,,,,\r\n");
    let bad = write_input(dir.path(), "bad.csv", &bytes);
    let err = run_import(&data, &messy_options(&bad, "crm")).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::InvalidEncoding {
                row: Some(5015),
                ..
            }
        ),
        "{err:?}"
    );
    // No valid record.
    let none = write_input(
        dir.path(),
        "none.csv",
        "客户编号,姓名,公司,邮箱,手机,备用邮箱,来源,法律依据\n1,,,x,,,,\n".as_bytes(),
    );
    assert!(run_import(&data, &messy_options(&none, "crm")).is_err());
    // An input that cannot be read.
    assert!(run_import(&data, &messy_options(&dir.path().join("absent.csv"), "crm")).is_err());

    assert_eq!(
        fs::read(dataset_path(&data, "crm")).unwrap(),
        dataset_before
    );
    assert_eq!(fs::read(rejects_path(&data, "crm")).unwrap(), report_before);
    assert_eq!(stored_files(&data), ["crm.bmds", "crm.rejects.csv"]);

    // A successful import replaces both files.
    let good = write_input(
        dir.path(),
        "good.csv",
        "客户编号,姓名,公司,邮箱,手机,备用邮箱,来源,法律依据\nZ1,,,z@example.cn,,,,\n".as_bytes(),
    );
    run_import(&data, &messy_options(&good, "crm")).unwrap();
    assert_eq!(ids(&Dataset::load(&data, "crm").unwrap()), ["Z1"]);
    assert_ne!(fs::read(rejects_path(&data, "crm")).unwrap(), report_before);
    assert_eq!(stored_files(&data), ["crm.bmds", "crm.rejects.csv"]);
}

#[test]
fn duplicates_keep_the_first_accepted_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "d.csv",
        b"id,email\n1,broken\n1,first@example.cn\n1,second@example.cn\n2,two@example.cn\n",
    );
    let mut opts = ImportOptions::new(&input, "d");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    let data = dir.path().join("data");
    let report = run_import(&data, &opts).unwrap();
    assert_eq!(
        (report.accepted, report.rejected_rows, report.duplicates),
        (2, 1, 1)
    );
    let dataset = Dataset::load(&data, "d").unwrap();
    assert_eq!(ids(&dataset), ["1", "2"]);
    assert_eq!(
        dataset.record(0).identifiers,
        [(IdentKind::Email, "first@example.cn".to_owned())]
    );
    let text = fs::read_to_string(report.report_path).unwrap();
    assert!(
        text.contains("4,id,duplicate_id,record id already used by row 2"),
        "{text}"
    );
}

#[test]
fn without_an_id_column_the_row_number_is_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "n.csv",
        b"phone,custom\n13800138000,\n,\nnot a phone,\n,K-77\n",
    );
    let mut opts = ImportOptions::new(&input, "n");
    opts.phone_cols = vec!["phone".into()];
    opts.custom_cols = vec!["custom".into()];
    let data = dir.path().join("data");
    run_import(&data, &opts).unwrap();
    let dataset = Dataset::load(&data, "n").unwrap();
    assert_eq!(ids(&dataset), ["1", "4"]);
    assert_eq!(dataset.record_id(1), "4");
    assert_eq!(
        dataset.record(1).identifiers,
        [(IdentKind::Custom, "K-77".to_owned())]
    );
}

#[test]
fn overlong_ids_and_provenance_values_are_rejected_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let long_id = "i".repeat(MAX_ID_BYTES + 1);
    let long_source = "s".repeat(MAX_PROVENANCE_BYTES + 1);
    let text =
        format!("id,email,source,consent\n{long_id},a@b.cn,x,yes\n2,c@d.cn,{long_source}, \n");
    let input = write_input(dir.path(), "p.csv", text.as_bytes());
    let mut opts = ImportOptions::new(&input, "p");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    opts.source_col = Some("source".into());
    opts.consent_col = Some("consent".into());
    let data = dir.path().join("data");
    let report = run_import(&data, &opts).unwrap();
    assert_eq!(
        (
            report.accepted,
            report.rejected_rows,
            report.rejected_values
        ),
        (1, 1, 1)
    );
    let dataset = Dataset::load(&data, "p").unwrap();
    let record = &dataset.record(0);
    assert_eq!(
        (record.source.as_deref(), record.consent.as_deref()),
        (None, None)
    );
    let text = fs::read_to_string(report.report_path).unwrap();
    assert!(
        text.contains("id_too_long") && text.contains("2,3,source,too_long"),
        "{text}"
    );
}

#[test]
fn bad_options_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = write_input(dir.path(), "x.csv", b"email\na@b.cn\n");
    let base = ImportOptions::new(&input, "x");
    let err = run_import(&data, &base).unwrap_err();
    assert!(err.to_string().contains("no identifier column"), "{err}");

    let mut opts = base.clone();
    opts.name_col = Some("email".into());
    assert!(
        run_import(&data, &opts)
            .unwrap_err()
            .to_string()
            .contains("--company-col")
    );
    let mut opts = base.clone();
    opts.email_cols = vec!["email".into()];
    opts.region = "ZZ".into();
    assert!(
        run_import(&data, &opts)
            .unwrap_err()
            .to_string()
            .contains("`ZZ`")
    );
    for name in ["", "../x", ".hidden", "a b", &"n".repeat(65)] {
        let mut opts = base.clone();
        opts.email_cols = vec!["email".into()];
        opts.name = name.to_owned();
        let err = run_import(&data, &opts).unwrap_err();
        assert!(
            matches!(err, DatasetError::InvalidName { .. }),
            "{name}: {err:?}"
        );
    }
    assert!(!data.exists());
}

#[test]
fn line_numbers_are_exact_with_crlf_blank_lines_and_quoted_line_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "l.csv",
        b"id,email,note\r\n\r\n1,bad,\"two\r\nlines\"\r\n\r\n2,worse,x\r\n3,\"multi\nline@x.cn\",y",
    );
    let mut opts = ImportOptions::new(&input, "l");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    let data = dir.path().join("data");
    let err = run_import(&data, &opts).unwrap_err();
    assert!(
        matches!(err, DatasetError::NoValidRecords { rows: 3, .. }),
        "{err:?}"
    );

    // The same rows with one good record, to read the report.
    let mut bytes = fs::read(&input).unwrap();
    bytes.extend_from_slice(b"\n4,ok@x.cn,z\n");
    fs::write(&input, bytes).unwrap();
    let report = run_import(&data, &opts).unwrap();
    let text = fs::read_to_string(report.report_path).unwrap();
    let lines: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let mut parts = l.split(',');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("1", "3"),
        ("1", "3"),
        ("2", "6"),
        ("2", "6"),
        ("3", "7"),
        ("3", "7"),
    ]
    .iter()
    .map(|(r, l)| (r.to_string(), l.to_string()))
    .collect();
    assert_eq!(lines, expected, "{text}");
}
