//! Large and gzip-encoded ingest bodies, read as they stream and cut into chunks of whole lines.
//!
//! Tinybird's Events API takes NDJSON bodies up to 10 MB, gzip-encoded or not. The worker feeds the
//! request body to a [`BodyReader`] as it arrives; the reader counts the bytes on the wire and (for
//! gzip) the decoded bytes, refuses as soon as either passes its limit (so a body over the limit is
//! never read further), and hands out chunks of at most [`BodyLimits::chunk_rows`] lines, each
//! processed and stored on its own, so memory stays bounded by a chunk whatever the body's size.

use std::io::Write;

use flate2::write::GzDecoder;

use crate::ingest::IngestError;

/// How a streamed body is cut: NDJSON line by line, or (a JSON array, or one object spread over
/// several lines) read whole, which is only allowed up to the whole-body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One JSON object per line.
    Lines,
    /// A JSON array or a pretty-printed object: parsed as one document.
    Whole,
}

/// The shape of a body from its first bytes; `None` until there is enough to tell (`end`: nothing more
/// will come).
pub fn shape(start: &[u8], end: bool) -> Option<Shape> {
    let trimmed = start.trim_ascii_start();
    match trimmed.first() {
        None => end.then_some(Shape::Lines),
        Some(b'[') => Some(Shape::Whole),
        Some(b'{') => match trimmed.iter().position(|&b| b == b'\n') {
            Some(nl) => Some(
                if serde_json::from_slice::<serde_json::Value>(&trimmed[..nl]).is_ok() {
                    Shape::Lines
                } else {
                    Shape::Whole
                },
            ),
            None if end => Some(Shape::Whole),
            None => None,
        },
        Some(_) => Some(Shape::Lines),
    }
}

/// Limits for a streamed body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes on the wire (compressed, for gzip).
    pub max_wire_bytes: usize,
    /// Bytes after decoding (a guard against compression bombs).
    pub max_decoded_bytes: usize,
    /// Lines per chunk handed out.
    pub chunk_rows: usize,
    /// Bytes per chunk handed out (a chunk ends at the last whole line below this).
    pub chunk_bytes: usize,
}

impl Default for BodyLimits {
    /// 10 MiB on the wire (Tinybird's limit), 100 MiB decoded, chunks of 1,000 lines or 1 MiB.
    fn default() -> Self {
        Self {
            max_wire_bytes: 10 * 1024 * 1024,
            max_decoded_bytes: 100 * 1024 * 1024,
            chunk_rows: 1_000,
            chunk_bytes: 1024 * 1024,
        }
    }
}

/// Reads a body chunk by chunk; see the module docs.
pub struct BodyReader {
    gzip: Option<GzDecoder<Vec<u8>>>,
    buf: Vec<u8>,
    wire: usize,
    decoded: usize,
    lines_before: usize,
    limits: BodyLimits,
}

impl BodyReader {
    /// A reader for a plain (`gzip == false`) or gzip-encoded body.
    pub fn new(gzip: bool, limits: BodyLimits) -> Self {
        Self {
            gzip: gzip.then(|| GzDecoder::new(Vec::new())),
            buf: Vec::new(),
            wire: 0,
            decoded: 0,
            lines_before: 0,
            limits,
        }
    }

    /// Takes the next bytes from the wire. Errors as soon as the body passes a limit, or when gzip
    /// data is corrupt.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        self.wire += bytes.len();
        if self.wire > self.limits.max_wire_bytes {
            return Err(IngestError::BodyTooLarge {
                limit: self.limits.max_wire_bytes,
            });
        }
        match &mut self.gzip {
            None => {
                self.decoded += bytes.len();
                self.buf.extend_from_slice(bytes);
            }
            Some(decoder) => {
                decoder
                    .write_all(bytes)
                    .map_err(|e| IngestError::BadEncoding(e.to_string()))?;
                self.decoded += decoder.get_ref().len();
                self.buf.append(decoder.get_mut());
            }
        }
        self.decoded_check()
    }

    /// Ends the body: the rest of the decoded data, or an error if the gzip stream is incomplete.
    pub fn finish(&mut self) -> Result<(), IngestError> {
        if let Some(decoder) = self.gzip.take() {
            let rest = decoder
                .finish()
                .map_err(|e| IngestError::BadEncoding(e.to_string()))?;
            self.decoded += rest.len();
            self.buf.extend_from_slice(&rest);
        }
        self.decoded_check()
    }

    fn decoded_check(&self) -> Result<(), IngestError> {
        if self.decoded > self.limits.max_decoded_bytes {
            return Err(IngestError::BodyTooLarge {
                limit: self.limits.max_decoded_bytes,
            });
        }
        Ok(())
    }

    /// The next chunk of whole lines, with the number of lines before it in the body (for 1-based
    /// line numbers); `None` until a full chunk is buffered. With `last` (after [`Self::finish`]) the
    /// remainder is handed out too, a last line without a newline included.
    pub fn next_chunk(&mut self, last: bool) -> Option<(usize, Vec<u8>)> {
        if self.buf.is_empty() {
            return None;
        }
        let (mut lines, mut cut) = (0, None);
        for (i, &b) in self.buf.iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            if i + 1 > self.limits.chunk_bytes && cut.is_some() {
                break;
            }
            lines += 1;
            cut = Some(i + 1);
            if lines == self.limits.chunk_rows {
                break;
            }
        }
        let full = lines == self.limits.chunk_rows || self.buf.len() >= self.limits.chunk_bytes;
        let cut = match cut {
            Some(c) if full => c,
            _ if last => self.buf.len(),
            _ => return None,
        };
        let rest = self.buf.split_off(cut);
        let chunk = std::mem::replace(&mut self.buf, rest);
        let before = self.lines_before;
        self.lines_before += chunk.iter().filter(|&&b| b == b'\n').count();
        Some((before, chunk))
    }

    /// What is buffered and not yet handed out (to look at the start of the body).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Decoded bytes so far.
    pub fn decoded_bytes(&self) -> usize {
        self.decoded
    }

    /// Bytes read from the wire so far.
    pub fn wire_bytes(&self) -> usize {
        self.wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"action\":\"page_hit\",\"n\":{i}}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn small(chunk_rows: usize) -> BodyLimits {
        BodyLimits {
            max_wire_bytes: 1 << 20,
            max_decoded_bytes: 1 << 22,
            chunk_rows,
            chunk_bytes: 1 << 20,
        }
    }

    /// Feeds `body` in pieces of `piece` bytes and collects every chunk.
    fn read_all(
        body: &[u8],
        gzip: bool,
        limits: BodyLimits,
        piece: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, IngestError> {
        let mut r = BodyReader::new(gzip, limits);
        let mut out = Vec::new();
        for p in body.chunks(piece) {
            r.push(p)?;
            while let Some(c) = r.next_chunk(false) {
                out.push(c);
            }
        }
        r.finish()?;
        while let Some(c) = r.next_chunk(true) {
            out.push(c);
        }
        Ok(out)
    }

    #[test]
    fn chunks_hold_whole_lines_and_count_the_lines_before_them() {
        let body = lines(25);
        let chunks = read_all(&body, false, small(10), 7).unwrap();
        assert_eq!(
            chunks.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            [0, 10, 20]
        );
        let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(joined, body);
        assert!(chunks.iter().all(|(_, c)| c.ends_with(b"\n")));
    }

    #[test]
    fn a_last_line_without_newline_is_kept() {
        let mut body = lines(3);
        body.extend_from_slice(b"{\"action\":\"x\"}");
        let chunks = read_all(&body, false, small(10), 5).unwrap();
        let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn gzip_bodies_decode_to_the_same_chunks() {
        let body = lines(2_500);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&body).unwrap();
        let gz = enc.finish().unwrap();
        let chunks = read_all(&gz, true, small(1_000), 4_096).unwrap();
        assert_eq!(chunks.len(), 3);
        let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn refuses_past_the_wire_limit_without_reading_further() {
        let limits = BodyLimits {
            max_wire_bytes: 100,
            ..small(10)
        };
        let mut r = BodyReader::new(false, limits);
        r.push(&[b'a'; 60]).unwrap();
        let e = r.push(&[b'a'; 60]).unwrap_err();
        assert!(matches!(e, IngestError::BodyTooLarge { limit: 100 }));
        assert_eq!(r.wire_bytes(), 120);
    }

    #[test]
    fn refuses_a_compression_bomb_past_the_decoded_limit() {
        let body = vec![b'\n'; 1 << 20];
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&body).unwrap();
        let gz = enc.finish().unwrap();
        let limits = BodyLimits {
            max_decoded_bytes: 64 * 1024,
            ..small(1 << 30)
        };
        let e = read_all(&gz, true, limits, 1024).unwrap_err();
        assert!(
            matches!(e, IngestError::BodyTooLarge { limit: 65536 }),
            "{e}"
        );
    }

    #[test]
    fn the_shape_comes_from_the_first_line() {
        assert_eq!(shape(b"  [{\"a\":1}]", false), Some(Shape::Whole));
        assert_eq!(shape(b"{\"a\":1}\n{\"a\":2}", false), Some(Shape::Lines));
        assert_eq!(shape(b"{\n  \"a\": 1\n}", false), Some(Shape::Whole));
        assert_eq!(shape(b"{\"a\":1", false), None);
        assert_eq!(shape(b"{\"a\":1}", true), Some(Shape::Whole));
        assert_eq!(shape(b"", true), Some(Shape::Lines));
        assert_eq!(shape(b"not json\n", false), Some(Shape::Lines));
    }

    #[test]
    fn corrupt_gzip_is_a_bad_encoding() {
        let e = read_all(b"not gzip at all", true, small(10), 4).unwrap_err();
        assert!(matches!(e, IngestError::BadEncoding(_)));
    }
}
