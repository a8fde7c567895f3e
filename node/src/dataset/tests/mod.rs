//! Dataset import, storage and command tests, on temporary data directories.

mod command;
mod import;
mod properties;
mod store;
mod stream;

use std::fs;
use std::path::{Path, PathBuf};

use sha2::Digest;

use super::*;

/// A CRM export as people really have them: BOM, CRLF, Chinese headers and names,
/// full-width characters, +86 mobiles in mixed formats, a quoted comma, duplicates,
/// invalid emails and phones, an empty id, an empty row and a misaligned row.
pub(super) const MESSY_CSV: &str = "\u{feff}客户编号,姓名,公司,邮箱,手机,备用邮箱,来源,法律依据\r\n\
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
pub(super) const REJECTED_VALUES: [&str; 5] = [
    "wangwu@tencent",
    "not-an-email",
    "12345",
    "bad@@x.com",
    "999",
];

pub(super) fn messy_options(input: &Path, name: &str) -> ImportOptions {
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

pub(super) fn write_input(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, bytes).unwrap();
    path
}

pub(super) fn run_import(data: &Path, opts: &ImportOptions) -> Result<ImportReport, DatasetError> {
    import(data, opts, &|_| {})
}

/// The files in `<data>/datasets` but the (empty) lock file, sorted.
pub(super) fn stored_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(datasets_dir(data))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != super::LOCK_FILE)
        .collect();
    names.sort();
    names
}

pub(super) fn ids(dataset: &Dataset) -> Vec<&str> {
    (0..dataset.len()).map(|i| dataset.record_id(i)).collect()
}

/// Replaces the trailing checksum so a deliberate edit passes it.
pub(super) fn reseal(bytes: &mut [u8]) {
    let split = bytes.len() - 32;
    let checksum = sha2::Sha256::digest(&bytes[..split]);
    bytes[split..].copy_from_slice(&checksum);
}
