//! Bulk: each connection streams a verifiable pattern and reads the echo back.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::{Ctx, Errors, Halt, connect, is_timeout, spawn_all, write_full};
use crate::bench::report::BulkResult;

/// Chunk written and read by a bulk connection.
const BULK_CHUNK: usize = 64 * 1024;

/// The bytes a bulk connection sends: a pseudo-random stream where the byte at any offset can
/// be computed alone (splitmix64 of the seed and the 8-byte block number), so the writer and
/// the verifier need no shared state and a chunk boundary falls anywhere.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    seed: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pattern {
    /// The stream of connection `conn` (no two connections send the same bytes).
    pub fn new(conn: u64) -> Pattern {
        Pattern {
            seed: splitmix64(conn ^ 0x50C1_AB00),
        }
    }

    fn block(&self, k: u64) -> [u8; 8] {
        splitmix64(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)).to_le_bytes()
    }

    /// Fills `buf` with the stream's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let k = pos / 8;
            let within = (pos % 8) as usize;
            let block = self.block(k);
            let n = (8 - within).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&block[within..within + n]);
            i += n;
            pos += n as u64;
        }
    }
}

/// Checks a received stream against its [`Pattern`], byte for byte, in chunks of any size.
#[derive(Debug)]
pub struct Verifier {
    pattern: Pattern,
    offset: u64,
    expected: Vec<u8>,
    mismatch: Option<u64>,
}

impl Verifier {
    /// Expects `pattern` from offset 0.
    pub fn new(pattern: Pattern) -> Verifier {
        Verifier {
            pattern,
            offset: 0,
            expected: Vec::new(),
            mismatch: None,
        }
    }

    /// Checks the next received bytes.
    pub fn feed(&mut self, got: &[u8]) {
        if self.mismatch.is_none() {
            self.expected.resize(got.len(), 0);
            self.pattern.fill(self.offset, &mut self.expected);
            if let Some(i) = got.iter().zip(&self.expected).position(|(a, b)| a != b) {
                self.mismatch = Some(self.offset + i as u64);
            }
        }
        self.offset += got.len() as u64;
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.offset
    }

    /// `Ok` when exactly `len` bytes came, all as sent; else what was wrong.
    pub fn finish(&self, len: u64) -> Result<(), String> {
        if let Some(at) = self.mismatch {
            return Err(format!("byte {at} differs from what was sent"));
        }
        if self.offset != len {
            return Err(format!("{} bytes came back of {len} sent", self.offset));
        }
        Ok(())
    }
}

/// Bulk settings.
#[derive(Debug, Clone, Copy)]
pub struct BulkParams {
    /// Concurrent connections.
    pub conns: usize,
    /// Bytes each connection sends (and must get back).
    pub bytes: u64,
    /// The whole workload gives up after this long.
    pub limit: Duration,
}

/// Bulk: each connection streams `bytes` (its own [`Pattern`]) while a second thread reads the
/// echo and verifies it; then shutdown(SHUT_WR) and read to the server's EOF.
pub fn bulk(ctx: &Ctx, p: BulkParams) -> BulkResult {
    let start = Instant::now();
    let hard = start + p.limit;
    let errors = Arc::new(Errors::default());
    let (c, e) = (ctx.clone(), Arc::clone(&errors));
    let results = spawn_all(p.conns, move |i| bulk_conn(&c, &e, i as u64, p.bytes, hard));
    let secs = start.elapsed().as_secs_f64();
    let verified = results.iter().all(|r| r.is_ok());
    let mismatch = results.iter().find_map(|r| r.as_ref().err().cloned());
    let (errors, first_error) = errors.take();
    let total = p.bytes * p.conns as u64;
    BulkResult {
        conns: p.conns,
        mib_each: p.bytes as f64 / (1 << 20) as f64,
        secs,
        mib_per_s: total as f64 / (1 << 20) as f64 / secs,
        verified,
        mismatch,
        errors,
        first_error,
    }
}

fn bulk_conn(
    ctx: &Ctx,
    errors: &Errors,
    conn: u64,
    bytes: u64,
    hard: Instant,
) -> Result<(), String> {
    let pattern = Pattern::new(conn);
    let mut s = connect(ctx.addr, false).map_err(|e| {
        errors.add(format!("connect: {e}"));
        format!("connect: {e}")
    })?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let wctx = ctx.clone();
    let writer = thread::Builder::new()
        .name(format!("bulk-w{conn}"))
        .spawn(move || -> Result<(), Halt> {
            let mut buf = vec![0u8; BULK_CHUNK];
            let mut off = 0;
            while off < bytes {
                let n = (bytes - off).min(BULK_CHUNK as u64) as usize;
                pattern.fill(off, &mut buf[..n]);
                write_full(&mut w, &buf[..n], hard, &wctx)?;
                off += n as u64;
            }
            w.shutdown(Shutdown::Write).map_err(Halt::Io)
        })
        .map_err(|e| e.to_string())?;
    let mut v = Verifier::new(pattern);
    let mut buf = vec![0u8; BULK_CHUNK];
    let mut read_err = None;
    // Bounded by the byte count (plus one read for EOF) and by `hard`.
    while v.received() <= bytes {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                v.feed(&buf[..n]);
                ctx.done.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if ctx.stopped() {
                    read_err = Some(Halt::Stopped);
                    break;
                }
                if Instant::now() >= hard {
                    read_err = Some(Halt::Late);
                    break;
                }
            }
            Err(e) => {
                read_err = Some(Halt::Io(e));
                break;
            }
        }
    }
    // Unblocks the writer if the reader gave up.
    if read_err.is_some() {
        let _ = s.shutdown(Shutdown::Both);
    }
    let wres = writer.join().unwrap_or(Err(Halt::Stopped));
    for h in [read_err, wres.err()].into_iter().flatten() {
        match h.describe() {
            Some(e) => errors.add(e),
            None => errors.add("stopped before the end (deadline or Ctrl-C)".into()),
        }
    }
    v.finish(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_the_stream_in_any_chunks() {
        let p = Pattern::new(3);
        let mut all = vec![0u8; 100_003];
        p.fill(0, &mut all);
        let mut v = Verifier::new(p);
        let mut off = 0;
        for (k, size) in [1usize, 7, 8, 9, 4096, 65536, 13]
            .iter()
            .cycle()
            .enumerate()
        {
            if off >= all.len() {
                break;
            }
            let n = (*size + k % 3).min(all.len() - off);
            v.feed(&all[off..off + n]);
            off += n;
        }
        assert_eq!(v.finish(all.len() as u64), Ok(()));
    }

    #[test]
    fn the_verifier_catches_one_corrupted_byte() {
        let p = Pattern::new(9);
        let mut stream = vec![0u8; 70_000];
        p.fill(0, &mut stream);
        stream[54_321] ^= 0x01;
        let mut v = Verifier::new(p);
        for chunk in stream.chunks(4_000) {
            v.feed(chunk);
        }
        let err = v.finish(stream.len() as u64).unwrap_err();
        assert!(err.contains("54321"), "{err}");
    }

    #[test]
    fn the_verifier_catches_a_short_stream_and_another_connections_bytes() {
        let p = Pattern::new(1);
        let mut stream = vec![0u8; 10_000];
        p.fill(0, &mut stream);
        let mut v = Verifier::new(p);
        v.feed(&stream[..9_999]);
        assert!(v.finish(10_000).unwrap_err().contains("9999 bytes"));

        let mut other = vec![0u8; 10_000];
        Pattern::new(2).fill(0, &mut other);
        let mut v = Verifier::new(p);
        v.feed(&other);
        assert!(v.finish(10_000).is_err());
    }

    #[test]
    fn the_pattern_is_the_same_from_any_offset() {
        let p = Pattern::new(5);
        let mut whole = vec![0u8; 64];
        p.fill(0, &mut whole);
        for start in 0..40 {
            let mut part = vec![0u8; 24];
            p.fill(start as u64, &mut part);
            assert_eq!(part, whole[start..start + 24]);
        }
    }
}
