//! The clap commands and `run`.

use clap::{CommandFactory, Parser};

use super::*;

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
