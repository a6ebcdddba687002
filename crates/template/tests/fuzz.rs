//! The fuzz target's checks (`pitcrew_template::fuzz_check`) on stable: over the committed seed
//! corpus, over inputs the fuzzer once broke (regressions), and over a deterministic
//! pseudo-random corpus built from the grammar's pieces. The real fuzzer (nightly, libFuzzer)
//! runs the same checks: `cargo +nightly fuzz run render fuzz/corpus/render fuzz/seeds/render`
//! from crates/template.

use std::path::Path;

use pitcrew_template::fuzz_check;

#[test]
fn seed_corpus() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/render");
    let mut count = 0;
    for entry in std::fs::read_dir(&seeds).expect("the seed corpus is committed") {
        let path = entry.unwrap().path();
        fuzz_check(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count >= 5, "only {count} seeds in {}", seeds.display());
}

/// Found by cargo fuzz: an expression over the length limit was evaluated when it arrived in one
/// read and reported as too long when it arrived a byte at a time. The limit now applies to
/// the expression's length, however it was read.
#[test]
fn regression_an_oversized_expression_gives_the_same_result_whatever_the_reads() {
    let mut input = b"\x01\x00\x00\x00ok\r\n${A\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 270));
    input.push(b'}');
    fuzz_check(&input);
    // The same at the boundary, and for names and `$$` lookahead with an allow-list (0x04).
    for len in 250..260 {
        for flags in [0x00, 0x04, 0x24, 0xe4] {
            let mut input = vec![flags, 0, 0, 0];
            input.extend_from_slice(b"${A:-");
            input.extend(std::iter::repeat_n(b'x', len));
            input.extend_from_slice(b"} $");
            input.extend(std::iter::repeat_n(b'A', len));
            input.extend_from_slice(b" $$");
            input.extend(std::iter::repeat_n(b'C', len));
            input.extend_from_slice(b" $${");
            input.extend(std::iter::repeat_n(b'C', len));
            input.push(b'}');
            fuzz_check(&input);
        }
    }
}

/// Pieces of the grammar, so random inputs are mostly almost-valid templates.
const PIECES: &[&[u8]] = &[
    b"$",
    b"$",
    b"$",
    b"{",
    b"}",
    b"}",
    b"$$",
    b"${",
    b":",
    b"-",
    b"=",
    b"+",
    b"?",
    b"%",
    b"#",
    b"!",
    b"/",
    b"A",
    b"B",
    b"C",
    b"D",
    b"E",
    b"U",
    b"APP_X",
    b"_",
    b"1",
    b" ",
    b"\n",
    b"\r\n",
    b"x",
    b"\\",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"${A:-",
    b"${U:=",
    b"${A",
    b"$A",
    b"${C}",
    b"${U?",
    b"${E:+",
    b"${#A}",
];

fn random_input(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut input = vec![rng.u8(..)];
    for _ in 0..3 {
        let len = rng.u8(..16);
        input.push(len);
        input.extend((0..len).map(|_| rng.u8(..)));
    }
    for _ in 0..rng.usize(0..120) {
        match rng.u8(..100) {
            // Long runs reach the expression, name and nesting limits.
            0 => input.extend(std::iter::repeat_n(b'x', rng.usize(200..300))),
            1 => input.extend(std::iter::repeat_n(b'N', rng.usize(200..300))),
            2 => {
                let depth = rng.usize(5..12);
                input.extend("${U:-".repeat(depth).bytes());
                input.extend(std::iter::repeat_n(b'}', depth));
            }
            3 => input.extend_from_slice(b"${N:=$A$A$A$A$A$A$A$A}${M:=$N$N$N$N$N$N}"),
            4..=9 => input.push(rng.u8(..)),
            _ => input.extend_from_slice(PIECES[rng.usize(..PIECES.len())]),
        }
    }
    input
}

/// A few seconds of pseudo-random inputs (a fixed seed, so a failure reproduces). Set
/// `PITCREW_FUZZ_ITERATIONS` to run longer.
#[test]
fn pseudo_random_corpus() {
    let iterations = std::env::var("PITCREW_FUZZ_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3_000);
    let mut rng = fastrand::Rng::with_seed(0x0070_6974_6372_6577);
    for iteration in 0..iterations {
        let input = random_input(&mut rng);
        let result = std::panic::catch_unwind(|| fuzz_check(&input));
        assert!(result.is_ok(), "iteration {iteration} failed on input {input:?}");
    }
}
