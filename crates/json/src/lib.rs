//! pitcrew-json: JSON string escaping and RFC 3339 timestamps for per-line encoders
//! (pitcrew-tail's records; pitcrew-metrics to come).
//!
//! Why a crate of its own: these few functions run for every log line, millions of times a
//! second, while the rest of a tool runs rarely. The workspace builds release binaries for
//! size (`opt-level = "z"`), which turns off vectorisation and calls libc's `memcpy` for
//! every small copy (musl's is slow for them: it was half of pitcrew-tail's time for JSON
//! output). The workspace's Cargo.toml builds this crate alone at `opt-level = 3`; the
//! optimisation level sticks to its functions through link-time optimisation, so the speed
//! costs a few kilobytes instead of the 1.5 MB that building all of pitcrew-tail for speed
//! did.

use std::cell::Cell;

use pitcrew_core::calendar::civil_from_days;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `text` as a JSON string (quotes included), replacing invalid UTF-8 by U+FFFD.
pub fn json_string(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    json_string_body(text, out);
    out.push(b'"');
}

/// [`json_string`] without the quotes.
pub fn json_string_body(text: &[u8], out: &mut Vec<u8>) {
    // Fast path: ASCII (the usual case for log lines) needs no UTF-8 check, and valid UTF-8
    // is escaped as is. Only invalid input pays for the lossy conversion, which allocates.
    if text.is_ascii() || std::str::from_utf8(text).is_ok() {
        escape_valid(text, out);
    } else {
        escape_valid(String::from_utf8_lossy(text).as_bytes(), out);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How many bytes [`escape_valid`] checks at once.
const BLOCK: usize = 32;

/// Whether `byte` needs an escape: `"`, `\` and the control characters (RFC 8259, section
/// 7). Bytes ≥ 0x80 are parts of valid UTF-8 sequences here and are copied. (Whole blocks
/// are checked by [`block_mask`]; this is for the last few bytes and the tests.)
#[inline]
pub fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Which bytes of a block need an escape, as a bit mask (bit i for byte i): four 8-byte
/// words, each checked with exact bit tricks (no carry crosses a byte) and gathered into
/// eight bits by one multiplication — what a vector compare and move-mask would do, without
/// `unsafe` or a per-byte loop.
#[inline]
fn block_mask(block: &[u8; BLOCK]) -> u32 {
    let mut mask = 0;
    for (index, word) in block.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([b' '; 8]));
        mask |= word_mask(word) << (index * 8);
    }
    mask
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit i set when byte i of `word` (little-endian) needs an escape.
#[inline]
fn word_mask(word: u64) -> u32 {
    // Bit 7 of a byte of `t` is set when the byte (without its top bit) is at least 0x20;
    // a byte is below 0x20 when neither that nor its own top bit is set.
    let below_space = !(((word & LOW7) + ONES * 0x60) | word) & HIGH;
    // Bit 7 set exactly where a byte of `y` is zero.
    let zero = |y: u64| !(((y & LOW7) + LOW7) | y) & HIGH;
    let flags = below_space | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
    // One bit per byte at bits 0, 8, …, 56, gathered into bits 0..8.
    #[allow(clippy::cast_possible_truncation)]
    let gathered = ((flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    gathered
}

/// Escapes valid UTF-8. Each block of [`BLOCK`] bytes is checked at once ([`block_mask`]): a
/// clean block (most of a log line) is copied whole, a fixed-size copy the compiler inlines;
/// a dirty one is escaped into a small buffer on the stack and copied once, so a line costs
/// one `memcpy` call per dirty block rather than one per run between escapes.
fn escape_valid(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len());
    let mut blocks = text.chunks_exact(BLOCK);
    for block in &mut blocks {
        let block: &[u8; BLOCK] = block.try_into().unwrap_or(&[b' '; BLOCK]);
        let mask = block_mask(block);
        if mask == 0 {
            out.extend_from_slice(block);
        } else {
            escape_dirty(block, mask, out);
        }
    }
    // The last bytes (fewer than a block: a short path, a line's end), one by one.
    for &byte in blocks.remainder() {
        if needs_escape(byte) {
            push_escape(byte, out);
        } else {
            out.push(byte);
        }
    }
}

/// One block with escapes (bit i of `mask` marks byte i), escaped through a stack buffer and
/// copied out in fixed-size pieces: no copy here has a length the compiler does not know,
/// so none becomes a `memcpy` call.
fn escape_dirty(block: &[u8; BLOCK], mut mask: u32, out: &mut Vec<u8>) {
    // The run before each escape is copied as a whole block from a zero-padded copy (a
    // fixed-size copy; the bytes past the run are overwritten next), so the loop runs once
    // per escape, not once per byte. Worst case: every byte escaped as \u00XX (six bytes),
    // plus the last block-sized copy.
    let mut padded = [0u8; BLOCK * 2];
    padded[..BLOCK].copy_from_slice(block);
    let mut escaped = [0u8; BLOCK * 7];
    let mut length = 0;
    let mut from = 0;
    while mask != 0 {
        let at = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        escaped[length..length + BLOCK].copy_from_slice(&padded[from..from + BLOCK]);
        length += at - from;
        let sequence = escape_sequence(block[at]);
        escaped[length..length + 6].copy_from_slice(&sequence.bytes);
        length += sequence.len;
        from = at + 1;
    }
    escaped[length..length + BLOCK].copy_from_slice(&padded[from..from + BLOCK]);
    length += BLOCK - from;
    let mut pieces = escaped[..length].chunks_exact(BLOCK);
    for piece in &mut pieces {
        let piece: &[u8; BLOCK] = piece.try_into().unwrap_or(&[b' '; BLOCK]);
        out.extend_from_slice(piece);
    }
    for &byte in pieces.remainder() {
        out.push(byte);
    }
}

/// Appends `{"time":"<RFC 3339>","file":<file>,"message":<message>` — the start of a
/// pitcrew record, whose caller adds its other fields and the closing `}` — with every
/// fixed part a copy the compiler inlines.
pub fn record_start(time: SystemTime, file: &[u8], message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339_millis(time, out);
    out.extend_from_slice(b"\",\"file\":");
    json_string(file, out);
    out.extend_from_slice(b",\"message\":");
    json_string(message, out);
}

/// The escape sequence for a byte that [`needs_escape`], in a small fixed buffer.
fn escape_sequence(byte: u8) -> EscapeSequence {
    let (bytes, len): ([u8; 6], usize) = match byte {
        b'"' => (*b"\\\"0000", 2),
        b'\\' => (*b"\\\\0000", 2),
        b'\n' => (*b"\\n0000", 2),
        b'\r' => (*b"\\r0000", 2),
        b'\t' => (*b"\\t0000", 2),
        0x08 => (*b"\\b0000", 2),
        0x0c => (*b"\\f0000", 2),
        control => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(control >> 4)],
                HEX[usize::from(control & 0xf)],
            ],
            6,
        ),
    };
    EscapeSequence { bytes, len }
}

/// An escape sequence: `len` bytes of `bytes`.
struct EscapeSequence {
    bytes: [u8; 6],
    len: usize,
}

impl std::ops::Deref for EscapeSequence {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends the escape sequence for `byte` (one that [`needs_escape`]).
fn push_escape(byte: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&escape_sequence(byte));
}

/// Appends an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-12-03T07:41:02.123Z`,
/// by integer arithmetic (no allocation, no time-zone database): times before
/// 1970 are written as 1970-01-01T00:00:00.000Z and times after 9999 as the last millisecond
/// of 9999, so the output is always 24 bytes of valid RFC 3339. The date and time of day are
/// formatted once per second per thread (records of a batch share their second; the release
/// build is optimised for size, where each 64-bit division is a slow instruction).
pub fn rfc3339_millis(time: SystemTime, out: &mut Vec<u8>) {
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, millis) = if since.as_secs() > MAX_SECS {
        (MAX_SECS, 999)
    } else {
        (since.as_secs(), since.subsec_millis())
    };
    let prefix = LAST_SECOND.with(|last| {
        let (cached_secs, cached) = last.get();
        if cached_secs == secs {
            return cached;
        }
        let formatted = date_and_time(secs);
        last.set((secs, formatted));
        formatted
    });
    out.extend_from_slice(&prefix);
    // `millis` is below 1000, so each digit fits a u8.
    #[allow(clippy::cast_possible_truncation)]
    let digits = [
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ];
    out.extend_from_slice(&digits);
}

thread_local! {
    /// The last second formatted by this thread: `YYYY-MM-DDTHH:MM:SS`.
    static LAST_SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch (at most year 9999).
fn date_and_time(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (in_day / 3600, (in_day / 60) % 60, in_day % 60);
    let mut text = *b"0000-00-00T00:00:00";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], hour);
    put_digits(&mut text[14..16], minute);
    put_digits(&mut text[17..19], second);
    text
}

/// Writes `value` as decimal digits filling `slot` (zero-padded on the left).
fn put_digits(slot: &mut [u8], mut value: u64) {
    for digit in slot.iter_mut().rev() {
        // `value % 10` is below 10, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let last = (value % 10) as u8;
        *digit = b'0' + last;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &[u8]) -> String {
        let mut out = Vec::new();
        json_string(text, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Every byte that needs an escape, at every position of texts spanning several blocks,
    /// next to clean bytes and to other escapes, round-trips through serde_json.
    #[test]
    fn escapes_round_trip_at_every_position_across_blocks() {
        for byte in 0..=0x7fu8 {
            for len in [1, 31, 32, 33, 64, 70] {
                for at in 0..len {
                    for filler in [b'x', b'"', 0x1f] {
                        let mut text = vec![filler; len];
                        text[at] = byte;
                        let parsed: String = serde_json::from_str(&escaped(&text)).unwrap();
                        assert_eq!(parsed.as_bytes(), text.as_slice(), "{byte:#x} at {at} of {len}");
                    }
                }
            }
        }
    }

    /// The word check agrees with the byte-by-byte definition for every byte in every lane,
    /// next to every kind of neighbour.
    #[test]
    fn the_word_mask_is_exact() {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                for filler in [0x00u8, 0x1f, 0x20, b'"', b'\\', b'x', 0x7f, 0x80, 0xff] {
                    let mut bytes = [filler; 8];
                    bytes[lane] = byte;
                    let expected = bytes
                        .iter()
                        .enumerate()
                        .fold(0u32, |mask, (i, &b)| mask | (u32::from(needs_escape(b)) << i));
                    assert_eq!(word_mask(u64::from_le_bytes(bytes)), expected, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn a_block_of_nothing_but_control_characters_fits_the_stack_buffer() {
        let text = [0x01u8; 96];
        let parsed: String = serde_json::from_str(&escaped(&text)).unwrap();
        assert_eq!(parsed.as_bytes(), text.as_slice());
        assert_eq!(escaped(&text).len(), 96 * 6 + 2);
    }

    #[test]
    fn utf8_is_kept_and_invalid_bytes_become_the_replacement_character() {
        assert_eq!(escaped("héllo ✓ 😀".as_bytes()), "\"héllo ✓ 😀\"");
        assert_eq!(escaped(b"a\xffb"), "\"a\u{fffd}b\"");
    }
}
