//! Reading a stored dataset record by record: the same records as a whole load, across
//! read blocks, and the same corruption checks.

use std::fs;

use super::super::DatasetReader;
use super::*;

#[test]
fn a_pass_reads_the_records_a_load_reads_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,email,consent\n");
    // About 6 MB of records: more than one read block.
    for i in 0..120_000 {
        csv.push_str(&format!(
            "record-{i:07},person.{i}@company{}.example.cn,yes\n",
            i % 97
        ));
    }
    let input = write_input(dir.path(), "big.csv", csv.as_bytes());
    let mut opts = ImportOptions::new(&input, "big");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    opts.consent_col = Some("consent".into());
    let data = dir.path().join("data");
    run_import(&data, &opts).unwrap();
    let loaded = Dataset::load(&data, "big").unwrap();
    let mut reader = DatasetReader::open(&data, "big").unwrap();
    assert_eq!(reader.meta(), loaded.meta());
    for _ in 0..2 {
        let mut expected = loaded.records();
        let mut seen = 0;
        reader
            .for_each(|record| {
                assert_eq!(Some(record), expected.next());
                seen += 1;
                Ok::<(), DatasetError>(())
            })
            .unwrap();
        assert_eq!(seen, 120_000);
    }
}

#[test]
fn a_damaged_file_fails_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "s.csv",
        "id,email\nA,a@example.cn\nB,b@example.cn\nC,c@example.cn\n".as_bytes(),
    );
    let mut opts = ImportOptions::new(&input, "s");
    opts.id_col = Some("id".into());
    opts.email_cols = vec!["email".into()];
    let data = dir.path().join("data");
    run_import(&data, &opts).unwrap();
    let path = dataset_path(&data, "s");
    let good = fs::read(&path).unwrap();
    let pass = || -> Result<(), DatasetError> {
        DatasetReader::open(&data, "s")?.for_each(|_| Ok::<(), DatasetError>(()))
    };
    assert!(pass().is_ok());
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        assert!(
            matches!(pass(), Err(DatasetError::Corrupt { .. })),
            "truncated to {len}"
        );
    }
    for position in [good.len() - 40, good.len() - 1] {
        let mut flipped = good.clone();
        flipped[position] ^= 0x20;
        fs::write(&path, &flipped).unwrap();
        assert!(
            matches!(pass(), Err(DatasetError::Corrupt { .. })),
            "byte {position}"
        );
    }
}
