//! The binary form of one stored record (see the format in `store`): encoding, and
//! decoding that bounds every length by the bytes that remain, so damaged bytes are an
//! error, never a panic or a huge allocation.

use blindmatch_protocol::ident::IdentKind;

use super::store::StoredRecord;

const FLAG_LEGAL_BASIS: u8 = 1;
const FLAG_CONSENT: u8 = 1 << 1;
const FLAG_SOURCE: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_LEGAL_BASIS | FLAG_CONSENT | FLAG_SOURCE;

/// Appends one record in the stored form.
pub(crate) fn encode_record(out: &mut Vec<u8>, record: &StoredRecord) {
    put_bytes(out, record.id.as_bytes());
    let fields = [
        (FLAG_LEGAL_BASIS, &record.legal_basis),
        (FLAG_CONSENT, &record.consent),
        (FLAG_SOURCE, &record.source),
    ];
    let flags = fields
        .iter()
        .filter(|(_, value)| value.is_some())
        .fold(0, |flags, (flag, _)| flags | flag);
    out.push(flags);
    for value in fields.iter().filter_map(|(_, value)| value.as_deref()) {
        put_bytes(out, value.as_bytes());
    }
    put_varint(out, record.identifiers.len() as u64);
    for (kind, value) in &record.identifiers {
        out.push(kind.code());
        put_bytes(out, value.as_bytes());
    }
}

/// Checks every record and returns where each starts.
pub(super) fn index_records(bytes: &[u8], count: u64) -> Result<Vec<u64>, String> {
    if count > u64::from(u32::MAX) + 1 {
        return Err(format!("record count {count} is out of range"));
    }
    let mut reader = Reader { bytes, pos: 0 };
    // Every record takes at least 5 bytes, which bounds the allocation.
    let capacity = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(bytes.len() / 5);
    let mut offsets = Vec::with_capacity(capacity);
    for index in 0..count {
        offsets.push(reader.pos as u64);
        reader
            .record()
            .map_err(|problem| format!("record {}: {problem}", index + 1))?;
    }
    if reader.pos != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the last record",
            bytes.len() - reader.pos
        ));
    }
    Ok(offsets)
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn record(&mut self) -> Result<StoredRecord, &'static str> {
        let id = self.string()?;
        let flags = self.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err("unknown provenance flags");
        }
        let mut field = |flag: u8| -> Result<Option<String>, &'static str> {
            if flags & flag != 0 {
                self.string().map(Some)
            } else {
                Ok(None)
            }
        };
        let legal_basis = field(FLAG_LEGAL_BASIS)?;
        let consent = field(FLAG_CONSENT)?;
        let source = field(FLAG_SOURCE)?;
        let count = self.varint()?;
        if count == 0 {
            return Err("no identifier");
        }
        // Every identifier takes at least 2 bytes.
        if count > (self.bytes.len() - self.pos) as u64 / 2 {
            return Err("identifier count exceeds the file");
        }
        let mut identifiers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let kind = IdentKind::from_code(self.byte()?).ok_or("unknown identifier kind")?;
            identifiers.push((kind, self.string()?));
        }
        Ok(StoredRecord {
            id,
            identifiers,
            legal_basis,
            consent,
            source,
        })
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        let byte = *self.bytes.get(self.pos).ok_or("unexpected end of data")?;
        self.pos += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("overlong length")
    }

    fn string(&mut self) -> Result<String, &'static str> {
        self.str().map(str::to_owned)
    }

    pub(super) fn str(&mut self) -> Result<&'a str, &'static str> {
        let len = self.varint()?;
        let remaining = self.bytes.len() - self.pos;
        if len > remaining as u64 {
            return Err("a length runs past the end of the data");
        }
        let bytes: &'a [u8] = self.bytes;
        let slice = &bytes[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        std::str::from_utf8(slice).map_err(|_| "text is not UTF-8")
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
