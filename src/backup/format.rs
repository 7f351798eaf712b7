//! The backup file: versioned, checksummed per part and as a whole, read
//! with bounds.
//!
//! ```text
//! preamble  "CVBACKUP" || format version (u32 BE) || len(header) (u32 BE)
//! header    BackupHeader (protobuf) || SHA-256(preamble || header)
//! chunk*    'C' || len(payload) (u32 BE) || payload: BackupChunk (protobuf) || SHA-256(payload)
//! trailer   'E' || entries (u64 BE) || chunks (u64 BE) || SHA-256(every byte before this digest)
//! ```
//!
//! A reader refuses anything that is not exactly this: another magic, a
//! version it does not know, a part whose digest differs, a length over its
//! bound, a file that ends before the trailer or goes on after it.

use std::io::{Read, Write};

use prost::Message as _;
use sha2::{Digest, Sha256};

use super::BackupError;
use crate::pb::storage;

/// The first bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"CVBACKUP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest header: the key file is at most 1 MiB.
const MAX_HEADER_LEN: u32 = 4 << 20;
/// A chunk is closed once its payload reaches this size.
const CHUNK_TARGET: usize = 1 << 20;
/// The largest chunk payload: a chunk over the target holds one entry, and
/// a store value is at most 1 MiB (keys are far smaller).
const MAX_CHUNK_LEN: u32 = 4 << 20;
const DIGEST_LEN: usize = 32;
const CHUNK_TAG: u8 = b'C';
const TRAILER_TAG: u8 = b'E';

/// Writes a backup file, part by part.
pub struct BackupWriter<W: Write> {
    out: W,
    whole: Sha256,
    chunk: storage::BackupChunk,
    chunk_len: usize,
    entries: u64,
    chunks: u64,
}

impl<W: Write> BackupWriter<W> {
    /// Writes the preamble and `header`.
    pub fn new(out: W, header: &storage::BackupHeader) -> Result<Self, BackupError> {
        let header = header.encode_to_vec();
        let len = u32::try_from(header.len())
            .ok()
            .filter(|len| *len <= MAX_HEADER_LEN)
            .ok_or_else(|| BackupError::TooLarge("the backup header".into()))?;
        let mut writer = Self {
            out,
            whole: Sha256::new(),
            chunk: storage::BackupChunk::default(),
            chunk_len: 0,
            entries: 0,
            chunks: 0,
        };
        let mut preamble = Vec::with_capacity(16 + header.len());
        preamble.extend_from_slice(&MAGIC);
        preamble.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        preamble.extend_from_slice(&len.to_be_bytes());
        preamble.extend_from_slice(&header);
        let digest = Sha256::digest(&preamble);
        writer.put(&preamble)?;
        writer.put(&digest)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.whole.update(bytes);
        self.out.write_all(bytes)?;
        Ok(())
    }

    /// Adds one store entry.
    pub fn entry(&mut self, tree: &[u8], key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        self.chunk_len += tree.len() + key.len() + value.len() + 16;
        self.chunk.entries.push(storage::BackupEntry {
            tree: tree.to_vec(),
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self.entries += 1;
        if self.chunk_len >= CHUNK_TARGET {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), BackupError> {
        if self.chunk.entries.is_empty() {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.chunk).encode_to_vec();
        self.chunk_len = 0;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len <= MAX_CHUNK_LEN)
            .ok_or_else(|| BackupError::TooLarge("a store entry".into()))?;
        self.put(&[CHUNK_TAG])?;
        self.put(&len.to_be_bytes())?;
        self.put(&payload)?;
        let digest = Sha256::digest(&payload);
        self.put(&digest)?;
        self.chunks += 1;
        Ok(())
    }

    /// Writes the last chunk and the trailer; returns the output and the
    /// number of entries written.
    pub fn finish(mut self) -> Result<(W, u64), BackupError> {
        self.flush_chunk()?;
        let mut trailer = vec![TRAILER_TAG];
        trailer.extend_from_slice(&self.entries.to_be_bytes());
        trailer.extend_from_slice(&self.chunks.to_be_bytes());
        self.put(&trailer)?;
        let digest = self.whole.clone().finalize();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok((self.out, self.entries))
    }
}

/// Reads a backup file, checking each part as it goes.
pub struct BackupReader<R: Read> {
    input: R,
    whole: Sha256,
    header: storage::BackupHeader,
    entries: u64,
    chunks: u64,
    done: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the preamble and the header.
    pub fn new(mut input: R) -> Result<Self, BackupError> {
        let mut preamble = [0u8; 16];
        read_exact(&mut input, &mut preamble)?;
        if preamble[..8] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let version = u32::from_be_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
        if version != FORMAT_VERSION {
            return Err(BackupError::UnsupportedVersion(version));
        }
        let len = u32::from_be_bytes([preamble[12], preamble[13], preamble[14], preamble[15]]);
        if len > MAX_HEADER_LEN {
            return Err(BackupError::Damaged(format!(
                "the header claims {len} bytes, over the bound of {MAX_HEADER_LEN}"
            )));
        }
        let header_bytes = read_vec(&mut input, len)?;
        let mut digest = [0u8; DIGEST_LEN];
        read_exact(&mut input, &mut digest)?;
        let mut whole = Sha256::new();
        whole.update(preamble);
        whole.update(&header_bytes);
        if whole.clone().finalize().as_slice() != digest {
            return Err(BackupError::Damaged(
                "the header's checksum does not match".into(),
            ));
        }
        whole.update(digest);
        let header = storage::BackupHeader::decode(header_bytes.as_slice())
            .map_err(|_| BackupError::Damaged("the header does not decode".into()))?;
        Ok(Self {
            input,
            whole,
            header,
            entries: 0,
            chunks: 0,
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &storage::BackupHeader {
        &self.header
    }

    /// The next chunk's entries, checked; `None` after a sound trailer (and
    /// nothing after it).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<storage::BackupEntry>>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        read_exact(&mut self.input, &mut tag)?;
        self.whole.update(tag);
        match tag[0] {
            CHUNK_TAG => {
                let mut len = [0u8; 4];
                read_exact(&mut self.input, &mut len)?;
                self.whole.update(len);
                let len = u32::from_be_bytes(len);
                if len > MAX_CHUNK_LEN {
                    return Err(BackupError::Damaged(format!(
                        "chunk {} claims {len} bytes, over the bound of {MAX_CHUNK_LEN}",
                        self.chunks + 1
                    )));
                }
                let payload = read_vec(&mut self.input, len)?;
                let mut digest = [0u8; DIGEST_LEN];
                read_exact(&mut self.input, &mut digest)?;
                if Sha256::digest(&payload).as_slice() != digest {
                    return Err(BackupError::Damaged(format!(
                        "chunk {}'s checksum does not match",
                        self.chunks + 1
                    )));
                }
                self.whole.update(&payload);
                self.whole.update(digest);
                let chunk = storage::BackupChunk::decode(payload.as_slice()).map_err(|_| {
                    BackupError::Damaged(format!("chunk {} does not decode", self.chunks + 1))
                })?;
                self.chunks += 1;
                self.entries += chunk.entries.len() as u64;
                Ok(Some(chunk.entries))
            }
            TRAILER_TAG => {
                let mut counts = [0u8; 16];
                read_exact(&mut self.input, &mut counts)?;
                self.whole.update(counts);
                let mut digest = [0u8; DIGEST_LEN];
                read_exact(&mut self.input, &mut digest)?;
                if self.whole.clone().finalize().as_slice() != digest {
                    return Err(BackupError::Damaged(
                        "the whole file's checksum does not match".into(),
                    ));
                }
                let entries = u64::from_be_bytes(counts[..8].try_into().unwrap_or_default());
                let chunks = u64::from_be_bytes(counts[8..].try_into().unwrap_or_default());
                if (entries, chunks) != (self.entries, self.chunks) {
                    return Err(BackupError::Damaged(format!(
                        "the trailer counts {entries} entries in {chunks} chunks, the file holds {} in {}",
                        self.entries, self.chunks
                    )));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(BackupError::Damaged("bytes follow the trailer".into()));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(BackupError::Damaged(format!(
                "unknown part tag {other:#04x} after chunk {}",
                self.chunks
            ))),
        }
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => BackupError::Truncated,
        _ => BackupError::Io(error),
    })
}

/// Reads `len` bytes (already checked against a bound) without trusting
/// `len` for the allocation up front.
fn read_vec(input: &mut impl Read, len: u32) -> Result<Vec<u8>, BackupError> {
    let len = u64::from(len);
    let mut out = Vec::new();
    input.take(len).read_to_end(&mut out)?;
    if out.len() as u64 != len {
        return Err(BackupError::Truncated);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let header = storage::BackupHeader {
            created_by: "test".into(),
            next_id: 7,
            key_check_value: vec![1; 40],
            wrapped_keys: vec![2; 80],
            ..Default::default()
        };
        let mut writer = BackupWriter::new(Vec::new(), &header).unwrap();
        for n in 0..300u32 {
            // Large enough values that the file has several chunks.
            writer
                .entry(b"connections", &n.to_be_bytes(), &vec![n as u8; 9000])
                .unwrap();
        }
        writer.finish().unwrap().0
    }

    fn read_all(bytes: &[u8]) -> Result<u64, BackupError> {
        let mut reader = BackupReader::new(bytes)?;
        while reader.next_chunk()?.is_some() {}
        Ok(reader.entries())
    }

    #[test]
    fn a_backup_reads_back() {
        let bytes = sample();
        assert_eq!(read_all(&bytes).unwrap(), 300);
        let reader = BackupReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.header().next_id, 7);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = sample();
        // Every byte of the preamble, the header and the first chunk's
        // framing, then a stride over the rest (each check hashes the file).
        let offsets = (0..120).chain((120..bytes.len()).step_by(bytes.len() / 60));
        for at in offsets {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(read_all(&bad).is_err(), "flip at {at} accepted");
        }
        for cut in (0..bytes.len())
            .step_by(bytes.len() / 40)
            .chain([bytes.len() - 1])
        {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(BackupError::Damaged(_))));
    }

    #[test]
    fn another_version_or_magic_is_refused_by_name() {
        let mut bytes = sample();
        bytes[11] = 2;
        assert!(matches!(
            read_all(&bytes),
            Err(BackupError::UnsupportedVersion(2))
        ));
        bytes[0] = b'X';
        assert!(matches!(read_all(&bytes), Err(BackupError::NotABackup)));
        assert!(matches!(read_all(b"CVB"), Err(BackupError::Truncated)));
    }
}
