//! Dataset import, storage and command tests, on temporary data directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use blindmatch_protocol::ident::{IdentKind, NORMALISATION_VERSION};
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, Outcome, Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::OutputMode;
use clap::{CommandFactory, Parser};
use sha2::{Digest, Sha256};

use super::*;

/// A CRM export as people really have them: BOM, CRLF, Chinese headers and names,
/// full-width characters, +86 mobiles in mixed formats, a quoted comma, duplicates,
/// invalid emails and phones, an empty id, an empty row and a misaligned row.
const MESSY_CSV: &str = "\u{feff}客户编号,姓名,公司,邮箱,手机,备用邮箱,来源,法律依据\r\n\
C001,张三,华为技术有限公司,zhang.san@huawei.com,138 0013 8000,,展会,合同\r\n\
C002,李四,阿里巴巴（中国）有限公司,ＬＩ．ＳＩ＠ＡＬＩＢＡＢＡ．ＣＯＭ,+86-139-0013-9000,lisi@gmail.com,官网,同意\r\n\
C003,王五,腾讯,wangwu@tencent,+86 137-0013-7000,,,\r\n\
C004,赵六,百度,not-an-email,12345,,,\r\n\
C005,,,bad@@x.com,999,,,\r\n\
C001,张三,华为,zhang3@huawei.com,,,,\r\n\
C006,,,,,,,\r\n\
,孙七,京东,sunqi@jd.com,,,,\r\n\
C007,周八,字节跳动,zhouba@bytedance.com,008613600136000,,,\r\n\
C008,吴九,\"小米科技有限责任公司\",wujiu@xiaomi.com,\"13500135000\",WuJiu@xiaomi.com,,\r\n\
C009,郑十,美团,zhengshi@meituan.com,+86 135 0013 5000,,,\r\n\
C010,\"Wang, Lei\",Lenovo Group Ltd.,wang.lei@lenovo.com,+1 650-253-0000,,,\r\n\
C011,only,two\r\n\
C012,钱十一,网易,qian@163.com,１３８００１３８００１,,,\r\n";

/// Raw values that were rejected in `MESSY_CSV`: none may appear in any report.
const REJECTED_VALUES: [&str; 5] = [
    "wangwu@tencent",
    "not-an-email",
    "12345",
    "bad@@x.com",
    "999",
];

fn messy_options(input: &Path, name: &str) -> ImportOptions {
    let mut opts = ImportOptions::new(input, name);
    opts.id_col = Some("客户编号".into());
    opts.email_cols = vec!["邮箱".into(), "备用邮箱".into()];
    opts.phone_cols = vec!["手机".into()];
    opts.name_col = Some("姓名".into());
    opts.company_col = Some("公司".into());
    opts.source_col = Some("来源".into());
    opts.legal_basis_col = Some("法律依据".into());
    opts.quiet = true;
    opts
}

fn write_input(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, bytes).unwrap();
    path
}

fn run_import(data: &Path, opts: &ImportOptions) -> Result<ImportReport, DatasetError> {
    import(data, opts, &|_| {})
}

/// The files in `<data>/datasets`, sorted.
fn stored_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(datasets_dir(data))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn ids(dataset: &Dataset) -> Vec<&str> {
    dataset.records().iter().map(|r| r.id.as_str()).collect()
}

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
    let record = |id: &str| dataset.records().iter().find(|r| r.id == id).unwrap();
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
    assert_eq!(a.records(), b.records());
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
        missing, available, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &["Email", "同意书"]);
    assert_eq!(available.len(), 8);
    assert_eq!(
        available[0], "客户编号",
        "BOM stripped from the first column"
    );
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
        dataset.records()[0].identifiers,
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
        dataset.records()[1].identifiers,
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
    let record = &dataset.records()[0];
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

/// A small stored dataset and its file bytes.
fn small_dataset(dir: &Path) -> (PathBuf, Vec<u8>) {
    let input = write_input(
        dir,
        "s.csv",
        "id,email,phone,src\nA,a@example.cn,13800138000,crm\nB,b@example.cn,,\nC,,+86 139 0013 9000,展会\n"
            .as_bytes(),
    );
    let mut opts = ImportOptions::new(&input, "s");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    opts.phone_cols = vec!["phone".into()];
    opts.source_col = Some("src".into());
    let data = dir.join("data");
    run_import(&data, &opts).unwrap();
    let bytes = fs::read(dataset_path(&data, "s")).unwrap();
    (data, bytes)
}

/// Replaces the trailing checksum so a deliberate edit passes it.
fn reseal(bytes: &mut [u8]) {
    let split = bytes.len() - 32;
    let checksum = Sha256::digest(&bytes[..split]);
    bytes[split..].copy_from_slice(&checksum);
}

#[test]
fn truncated_or_corrupted_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (data, good) = small_dataset(dir.path());
    let path = dataset_path(&data, "s");
    assert!(good.starts_with(&MAGIC));

    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        let err = Dataset::load(&data, "s").unwrap_err();
        assert!(
            matches!(err, DatasetError::Corrupt { .. }),
            "{len}: {err:?}"
        );
        assert!(err.to_string().contains("re-import"), "{err}");
    }
    let mut flipped = good.clone();
    let middle = flipped.len() - 40;
    flipped[middle] ^= 0x20;
    fs::write(&path, &flipped).unwrap();
    let message = Dataset::load(&data, "s").unwrap_err().to_string();
    assert!(message.contains("checksum mismatch"), "{message}");

    fs::write(&path, b"id,email\n1,a@b.cn\n").unwrap();
    let message = Dataset::load(&data, "s").unwrap_err().to_string();
    assert!(
        message.contains("not a blindmatch dataset file"),
        "{message}"
    );

    let mut newer = good.clone();
    newer[8] = 2;
    fs::write(&path, &newer).unwrap();
    let err = Dataset::load(&data, "s").unwrap_err();
    assert!(
        matches!(err, DatasetError::UnsupportedFormat { found: 2, .. }),
        "{err:?}"
    );

    let mut renormalised = good.clone();
    renormalised[10] = 99;
    reseal(&mut renormalised);
    fs::write(&path, &renormalised).unwrap();
    let err = Dataset::load(&data, "s").unwrap_err();
    assert!(
        matches!(err, DatasetError::NormalisationVersion { found: 99, .. }),
        "{err:?}"
    );

    // Any byte of the metadata or records changed, checksum recomputed: an error or a
    // (differently valued) dataset, never a panic.
    let meta_len = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    for position in 16..good.len() - 32 {
        for value in [0x00, 0x7F, 0x80, 0xFF] {
            let mut edited = good.clone();
            edited[position] = value;
            reseal(&mut edited);
            let _ = store::decode(&path, &edited);
        }
    }
    let mut bad_kind = good.clone();
    let records_start = 16 + meta_len;
    // Record A: id len, "A", flags, source len, "crm", count, first kind code.
    let kind_at = records_start + 1 + 1 + 1 + 1 + 3 + 1;
    assert_eq!(bad_kind[kind_at], IdentKind::Email.code());
    bad_kind[kind_at] = 9;
    reseal(&mut bad_kind);
    let message = store::decode(&path, &bad_kind).unwrap_err().to_string();
    assert!(
        message.contains("record 1: unknown identifier kind"),
        "{message}"
    );

    fs::write(&path, &good).unwrap();
    assert_eq!(Dataset::load(&data, "s").unwrap().len(), 3);
}

#[test]
fn a_renamed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = small_dataset(dir.path());
    fs::rename(dataset_path(&data, "s"), dataset_path(&data, "t")).unwrap();
    let message = Dataset::load(&data, "t").unwrap_err().to_string();
    assert!(message.contains("holds dataset `s`"), "{message}");
}

#[test]
fn list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(list(&data).unwrap().is_empty());
    let input = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    run_import(&data, &messy_options(&input, "zeta")).unwrap();
    run_import(&data, &messy_options(&input, "alpha")).unwrap();
    fs::write(dataset_path(&data, "broken"), b"junk").unwrap();
    fs::write(datasets_dir(&data).join(".alpha.bmds.x.tmp"), b"partial").unwrap();

    let entries = list(&data).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["alpha", "broken", "zeta"]);
    let alpha = entries[0].meta.as_ref().unwrap();
    assert_eq!(alpha.counts.accepted, 9);
    assert_eq!(
        alpha.input_sha256,
        hex::encode(Sha256::digest(MESSY_CSV.as_bytes()))
    );
    assert!(entries[1].meta.is_err());

    remove(&data, "alpha").unwrap();
    assert!(!dataset_path(&data, "alpha").exists());
    assert!(!rejects_path(&data, "alpha").exists());
    assert!(matches!(
        remove(&data, "alpha"),
        Err(DatasetError::NotFound { .. })
    ));
    assert!(matches!(
        Dataset::load(&data, "alpha"),
        Err(DatasetError::NotFound { .. })
    ));
    assert!(matches!(
        remove(&data, "../zeta"),
        Err(DatasetError::InvalidName { .. })
    ));
    remove(&data, "broken").unwrap();
    let names: Vec<String> = list(&data).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["zeta"]);
}

/// Runs a whole session in memory, in `both` mode.
fn psi(initiator_set: &Dataset, responder_set: &Dataset) -> (Outcome, Outcome) {
    let mut rng = rand::rng();
    let config = InitiatorConfig::new([7; 16], "b", "test", OutputMode::Both);
    let mut initiator = Initiator::new(config, initiator_set.prepared_set(), &mut rng).unwrap();
    let mut responder = Responder::new(ResponderConfig::default());
    let (mut done_i, mut done_r) = (None, None);
    for _ in 0..10_000 {
        while let Some(frame) = initiator.poll_transmit() {
            responder.handle_frame(&frame).unwrap();
        }
        while let Some(event) = responder.poll_event() {
            match event {
                Event::HelloReceived(_) => {
                    responder
                        .accept(responder_set.prepared_set(), &mut rng)
                        .unwrap();
                }
                Event::Completed(outcome) => done_r = Some(outcome),
                other => panic!("responder: {other:?}"),
            }
        }
        while let Some(frame) = responder.poll_transmit() {
            initiator.handle_frame(&frame).unwrap();
        }
        while let Some(event) = initiator.poll_event() {
            match event {
                Event::Accepted { .. } => {}
                Event::Completed(outcome) => done_i = Some(outcome),
                other => panic!("initiator: {other:?}"),
            }
        }
        if let (Some(i), Some(r)) = (&done_i, &done_r) {
            return (i.clone(), r.clone());
        }
    }
    panic!("session did not finish");
}

fn matched_ids(dataset: &Dataset, outcome: &Outcome) -> Vec<String> {
    let mut ids: Vec<String> = outcome
        .matches
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| dataset.record_id(m.record as usize).to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn prepared_set_results_map_back_to_record_ids() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let crm = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    run_import(&data, &messy_options(&crm, "crm")).unwrap();
    // The provider writes the same people differently, and has others.
    let provider = write_input(
        dir.path(),
        "provider.csv",
        "uid,mail,mobile\n\
         p1,Zhang.San@Huawei.com,\n\
         p2,,+8613500135000\n\
         p3,nobody@example.cn,13700000000\n\
         p4,li.si@alibaba.com,+86 139 0013 9000\n"
            .as_bytes(),
    );
    let mut opts = ImportOptions::new(&provider, "provider");
    opts.id_col = Some("uid".into());
    opts.email_cols = vec!["mail".into()];
    opts.phone_cols = vec!["mobile".into()];
    run_import(&data, &opts).unwrap();

    let ours = Dataset::load(&data, "crm").unwrap();
    let theirs = Dataset::load(&data, "provider").unwrap();
    let (initiator, responder) = psi(&ours, &theirs);
    // The shared phone maps back to both C008 and C009.
    assert_eq!(
        matched_ids(&ours, &initiator),
        ["C001", "C002", "C008", "C009"]
    );
    assert_eq!(matched_ids(&theirs, &responder), ["p1", "p2", "p4"]);

    // Filtering keeps indices: only records with a source take part.
    let with_source = ours.prepared_set_where(|r| r.source.is_some());
    assert_eq!(with_source.len(), 7);
}

#[test]
fn import_and_load_speed_of_100k_rows() {
    let rows = if cfg!(debug_assertions) {
        10_000
    } else {
        100_000
    };
    import_and_load_speed(rows);
}

/// `cargo test --release -p blindmatch-node --lib -- --ignored --nocapture million`
#[test]
#[ignore = "takes about half a minute; run explicitly"]
fn import_and_load_speed_of_a_million_rows() {
    import_and_load_speed(1_000_000);
}

/// Imports and loads `rows` generated rows (email, phone, name+company each), prints
/// the timings.
fn import_and_load_speed(rows: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name,company,email,phone\n");
    for i in 0..rows {
        text.push_str(&format!(
            "K{i},用户{i},公司{},user{i}@example{}.cn,+86 139 {:04} {:04}\n",
            i % 997,
            i % 101,
            i / 10_000,
            i % 10_000
        ));
    }
    let input = write_input(dir.path(), "big.csv", text.as_bytes());
    drop(text);
    let mut opts = ImportOptions::new(&input, "big");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    opts.phone_cols = vec!["phone".into()];
    opts.name_col = Some("name".into());
    opts.company_col = Some("company".into());
    let data = dir.path().join("data");

    let started = Instant::now();
    let report = run_import(&data, &opts).unwrap();
    let imported = started.elapsed();
    assert_eq!(report.accepted, rows);
    let started = Instant::now();
    let dataset = Dataset::load(&data, "big").unwrap();
    let loaded = started.elapsed();
    let started = Instant::now();
    let set = dataset.prepared_set();
    let prepared = started.elapsed();
    assert_eq!(set.len() as u64, 3 * rows);
    let csv_size = fs::metadata(&input).unwrap().len();
    let size = fs::metadata(dataset_path(&data, "big")).unwrap().len();
    println!(
        "{rows} rows ({} KiB CSV, {} KiB stored): import {imported:?}, load {loaded:?}, prepared set {prepared:?}",
        csv_size / 1024,
        size / 1024
    );
}

#[derive(Debug, Parser)]
struct TestCli {
    #[command(subcommand)]
    command: DatasetCommand,
}

#[test]
fn command_line_parses_and_explains_itself() {
    TestCli::command().debug_assert();
    let cli = TestCli::try_parse_from([
        "dataset",
        "import",
        "crm.csv",
        "--name",
        "crm",
        "--email-col",
        "邮箱",
        "--email-col",
        "备用邮箱",
        "--phone-col",
        "手机",
        "--encoding",
        "gb18030",
        "--id-col",
        "id",
    ])
    .unwrap();
    let DatasetCommand::Import(args) = cli.command else {
        panic!("not import")
    };
    let opts = args.to_options(true);
    assert_eq!(opts.email_cols, ["邮箱", "备用邮箱"]);
    assert_eq!(opts.encoding, InputEncoding::Gb18030);
    assert_eq!(opts.region, "CN");
    assert!(opts.quiet);

    let no_identifier = TestCli::try_parse_from(["dataset", "import", "f.csv", "--name", "x"]);
    assert!(no_identifier.is_err());
    let name_alone = TestCli::try_parse_from([
        "dataset",
        "import",
        "f.csv",
        "--name",
        "x",
        "--name-col",
        "n",
    ]);
    assert!(name_alone.is_err());
    let list = TestCli::try_parse_from(["dataset", "list", "--json"]).unwrap();
    assert!(matches!(list.command, DatasetCommand::List { json: true }));

    let mut command = TestCli::command();
    let import = command.find_subcommand_mut("import").unwrap();
    let help = import.render_long_help().to_string();
    for expected in [
        "--email-col",
        "repeat",
        "--encoding",
        "gb18030",
        "rejects.csv",
        "row number",
    ] {
        assert!(help.contains(expected), "help lacks {expected}:\n{help}");
    }
}

#[test]
fn run_imports_lists_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = write_input(dir.path(), "crm.csv", MESSY_CSV.as_bytes());
    let cli = TestCli::try_parse_from([
        "dataset",
        "import",
        input.to_str().unwrap(),
        "--name",
        "crm",
        "--email-col",
        "邮箱",
    ])
    .unwrap();
    let DatasetOutcome::Imported(report) = run(cli.command, &data, true).unwrap() else {
        panic!("not imported")
    };
    assert_eq!(report.accepted, 9);
    assert!(matches!(
        run(DatasetCommand::List { json: true }, &data, true).unwrap(),
        DatasetOutcome::Listed
    ));
    let removed = run(DatasetCommand::Remove { name: "crm".into() }, &data, true).unwrap();
    assert!(matches!(removed, DatasetOutcome::Removed { name } if name == "crm"));
    assert!(run(DatasetCommand::Remove { name: "crm".into() }, &data, true).is_err());
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

mod properties {
    use proptest::prelude::*;

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
                store::encode_record(&mut body, record);
            }
            let bytes = store::encode_file(&meta_for(records.len() as u64), body).unwrap();
            let dataset = store::decode(Path::new("p.bmds"), &bytes).unwrap();
            prop_assert_eq!(dataset.records(), &records[..]);
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
            let _ = store::decode(Path::new("p.bmds"), &bytes);
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
}
