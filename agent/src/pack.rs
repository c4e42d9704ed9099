//! The gzip stream of a report bundle. Most reports are a few small logs: for those the tar is
//! kept as it is, in stored (uncompressed) deflate blocks, which any gzip reader takes. Setting
//! up a compressor zeroes about 300 KiB (its window and tables): in a run of 1,000 short
//! instances that was 7 % of the agents' CPU (page faults in `memset`), about 200 µs each,
//! against about 10 µs for a stored stream. A bundle that grows past [`SMALL`] is compressed.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::{Compression, Crc};

/// Up to this many bytes of tar, the bundle is stored rather than compressed.
pub const SMALL: usize = 64 * 1024;

/// The longest stored deflate block (its length is a 16-bit field).
const BLOCK: usize = 65535;

/// A gzip writer that stores what it is given while it is small and compresses otherwise.
pub enum Packer {
    Small(Vec<u8>),
    Large(GzEncoder<Vec<u8>>),
}

impl Default for Packer {
    fn default() -> Self {
        Packer::Small(Vec::new())
    }
}

impl Packer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole gzip stream.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Packer::Small(tar) => Ok(stored(&tar)),
            Packer::Large(gz) => gz.finish(),
        }
    }
}

impl Write for Packer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Packer::Small(tar) = self {
            if tar.len() + buf.len() <= SMALL {
                tar.extend_from_slice(buf);
                return Ok(buf.len());
            }
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(tar)?;
            *self = Packer::Large(gz);
        }
        match self {
            Packer::Large(gz) => gz.write(buf),
            Packer::Small(_) => unreachable!("switched above"),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Packer::Small(_) => Ok(()),
            Packer::Large(gz) => gz.flush(),
        }
    }
}

/// `data` as a gzip member of stored deflate blocks (RFC 1952 around RFC 1951 §3.2.4).
fn stored(data: &[u8]) -> Vec<u8> {
    // Magic, deflate, no flags, no time, no extra flags, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.reserve(data.len() + data.len() / BLOCK * 5 + 13);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]); // one empty final block
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let len = block.len() as u16;
        out.push(u8::from(last)); // BFINAL, BTYPE 00 (stored); the block starts on a byte
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).expect("a valid gzip stream");
        out
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn stored_streams_decode_to_what_was_stored() {
        for n in [0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let data = pattern(n);
            assert_eq!(gunzip(&stored(&data)), data, "{n} bytes");
        }
    }

    #[test]
    fn small_bundles_are_stored_and_large_ones_compressed() {
        // Written in pieces, as tar writes: headers, contents, padding.
        for (n, compressed) in [(0, false), (10_000, false), (SMALL, false), (SMALL + 1, true), (1_000_000, true)] {
            let data = vec![b'a'; n];
            let mut p = Packer::new();
            for piece in data.chunks(512) {
                p.write_all(piece).unwrap();
            }
            assert_eq!(matches!(p, Packer::Large(_)), compressed, "{n} bytes");
            let gz = p.finish().unwrap();
            assert_eq!(gunzip(&gz), data, "{n} bytes");
            if compressed {
                assert!(gz.len() < n / 10, "{n} bytes of one letter compress: {} bytes", gz.len());
            } else {
                assert!(gz.len() >= n, "{n} bytes are stored as they are: {} bytes", gz.len());
            }
        }
    }
}
