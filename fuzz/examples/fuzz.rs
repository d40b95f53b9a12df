//! Long-run mutational fuzzer over every decoder in `qnet_fuzz::TARGETS` (no nightly
//! needed): starts from the checked-in corpus and the built-in valid seeds, stacks random
//! mutations (bit flips, interesting integers, inserts, deletes, splices, dictionary tokens,
//! token repeats for deep nesting), keeps accepted inputs as new starting points, and stops a
//! target at its first panic or broken invariant, saving the input under `target/fuzz-crashes/`.
//!
//! ```text
//! cargo run --release -p qnet-fuzz --example fuzz -- --target all --seconds 600
//! cargo run --release -p qnet-fuzz --example fuzz -- --target block --seconds 60 --seed 7
//! cargo run -p qnet-fuzz --example fuzz -- --write-seeds        # refresh fuzz/tests/corpus/<target>/seed-*
//! ```
//!
//! Each target runs on a thread with a 2 MiB stack, the size of a tokio worker's, so input
//! that nests deeply enough to overflow the node's stack overflows here too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qnet_fuzz::{Target, Verdict, TARGETS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Largest input the mutator builds.
const MAX_LEN: usize = 256 * 1024;
/// Most inputs kept per target.
const POOL_MAX: usize = 4_096;
/// Stack size of the fuzzing thread (tokio's worker default).
const STACK_BYTES: usize = 2 * 1024 * 1024;

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551615",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"=",
    b"[[",
    b"]]",
    b"\"\"\"",
    b"'''",
    b"\n",
    b"#",
    b".",
    b"ms",
    b"s",
    b"h",
    b"999999999999999999h",
    b"0.0.0.0:0",
    b"[::1]:1",
    b"255.255.255.255:65535",
    b"v1 ",
    b" ",
    b"super",
    b"full",
    b"light",
    b"eu",
    b"q",
    b"ff",
    b"00",
    b"nan",
    b"inf",
];

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

struct Options {
    targets: Vec<&'static Target>,
    seconds: u64,
    corpus: PathBuf,
    seed: u64,
    write_seeds: bool,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut names = Vec::new();
    let mut opts = Options {
        targets: Vec::new(),
        seconds: 10,
        corpus: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"),
        seed: rand::random(),
        write_seeds: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--target" => names.push(value()?),
            "--seconds" => opts.seconds = value()?.parse().map_err(|_| "bad --seconds")?,
            "--corpus" => opts.corpus = PathBuf::from(value()?),
            "--seed" => opts.seed = value()?.parse().map_err(|_| "bad --seed")?,
            "--write-seeds" => opts.write_seeds = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if names.is_empty() || names.iter().any(|n| n == "all") {
        opts.targets = TARGETS.iter().collect();
    } else {
        for n in names {
            let t = qnet_fuzz::target(&n).ok_or(format!(
                "unknown target {n}; one of: all {}",
                TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
            ))?;
            opts.targets.push(t);
        }
    }
    Ok(opts)
}

fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn write_seeds(opts: &Options) -> Result<(), String> {
    for t in &opts.targets {
        let dir = opts.corpus.join(t.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (i, seed) in (t.seeds)().iter().enumerate() {
            let path = dir.join(format!("seed-{i}"));
            std::fs::write(&path, seed).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        println!("{}: wrote seeds to {}", t.name, dir.display());
    }
    Ok(())
}

fn pick<'a>(rng: &mut StdRng, pool: &'a [Vec<u8>]) -> &'a [u8] {
    pool.get(rng.gen_range(0..pool.len().max(1)))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let len = input.len();
    match rng.gen_range(0..10) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = rng.gen();
        }
        2 => {
            let at = rng.gen_range(0..=len);
            let n = rng.gen_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 64));
            input.drain(from..to);
        }
        4 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 256));
            let chunk = input[from..to].to_vec();
            let at = rng.gen_range(0..=len);
            input.splice(at..at, chunk);
        }
        5 => {
            let other = pick(rng, pool);
            let cut = rng.gen_range(0..=len);
            let from = rng.gen_range(0..=other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        6 if len > 0 => {
            let value = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            let width = [1usize, 2, 4, 8][rng.gen_range(0..4)];
            let bytes = if rng.gen() {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            let at = rng.gen_range(0..len);
            let end = (at + width).min(len);
            let src = if rng.gen() {
                &bytes[..]
            } else {
                &bytes[8 - width..]
            };
            input[at..end].copy_from_slice(&src[..end - at]);
        }
        7 => {
            let token = TOKENS[rng.gen_range(0..TOKENS.len())];
            let at = rng.gen_range(0..=len);
            input.splice(at..at, token.iter().copied());
        }
        8 => {
            // deep nesting and long runs: one token repeated up to 100k times
            let token = TOKENS[rng.gen_range(0..6)];
            let times = [10usize, 200, 5_000, 100_000][rng.gen_range(0..4)];
            let at = rng.gen_range(0..=len);
            let run: Vec<u8> = token
                .iter()
                .copied()
                .cycle()
                .take(token.len() * times)
                .collect();
            input.splice(at..at, run);
        }
        _ if len > 0 => input.truncate(rng.gen_range(0..len)),
        _ => input.push(rng.gen()),
    }
    input.truncate(MAX_LEN);
}

struct Report {
    execs: u64,
    accepted: u64,
    rejected: u64,
    pool: usize,
    slowest_ms: u128,
    crash: Option<(String, PathBuf)>,
}

fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from("target/fuzz-crashes").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = blake3::hash(input).to_hex();
    let path = dir.join(format!("crash-{}", &name.as_str()[..16]));
    let _ = std::fs::write(&path, input);
    path
}

fn fuzz(target: &'static Target, opts: &Options) -> Report {
    let mut rng = StdRng::seed_from_u64(
        opts.seed ^ blake3::hash(target.name.as_bytes()).as_bytes()[0] as u64,
    );
    let mut pool = read_corpus(&opts.corpus.join(target.name));
    pool.extend((target.seeds)());
    pool.push(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let mut report = Report {
        execs: 0,
        accepted: 0,
        rejected: 0,
        pool: 0,
        slowest_ms: 0,
        crash: None,
    };
    let mut seen: std::collections::HashSet<[u8; 32]> =
        pool.iter().map(|i| *blake3::hash(i).as_bytes()).collect();
    // corpus first, unmutated, then mutants until the deadline
    let mut queue: Vec<Vec<u8>> = pool.clone();
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if report.execs % 64 == 0 && Instant::now() >= deadline {
                    break;
                }
                let mut input = pick(&mut rng, &pool).to_vec();
                for _ in 0..rng.gen_range(1..=4) {
                    mutate(&mut rng, &mut input, &pool);
                }
                input
            }
        };
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| (target.run)(&input));
        report.slowest_ms = report.slowest_ms.max(started.elapsed().as_millis());
        report.execs += 1;
        match result {
            Ok(Ok(Verdict::Accepted)) => {
                report.accepted += 1;
                if seen.insert(*blake3::hash(&input).as_bytes()) {
                    if pool.len() < POOL_MAX {
                        pool.push(input);
                    } else {
                        let i = rng.gen_range(0..pool.len());
                        pool[i] = input;
                    }
                }
            }
            Ok(Ok(Verdict::Rejected)) => report.rejected += 1,
            Ok(Err(broken)) => {
                report.crash = Some((broken, save_crash(target.name, &input)));
                break;
            }
            Err(_) => {
                report.crash = Some(("panic".into(), save_crash(target.name, &input)));
                break;
            }
        }
    }
    report.pool = pool.len();
    report
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if opts.write_seeds {
        if let Err(e) = write_seeds(&opts) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    println!("seed {}", opts.seed);
    let mut failed = false;
    for target in &opts.targets {
        let target: &'static Target = target;
        let started = Instant::now();
        let opts_ref = Options {
            targets: Vec::new(),
            seconds: opts.seconds,
            corpus: opts.corpus.clone(),
            seed: opts.seed,
            write_seeds: false,
        };
        let report = std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            .stack_size(STACK_BYTES)
            .spawn(move || fuzz(target, &opts_ref))
            .map_err(|e| e.to_string())
            .and_then(|h| h.join().map_err(|_| "fuzz thread died".to_string()));
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", target.name);
                failed = true;
                continue;
            }
        };
        let result = match &report.crash {
            None => "ok".to_string(),
            Some((why, path)) => {
                failed = true;
                format!("CRASH ({why}) saved to {}", path.display())
            }
        };
        println!(
            "target={} seconds={} execs={} accepted={} rejected={} pool={} slowest_ms={} result={}",
            target.name,
            started.elapsed().as_secs(),
            report.execs,
            report.accepted,
            report.rejected,
            report.pool,
            report.slowest_ms,
            result
        );
    }
    if failed {
        std::process::exit(1);
    }
}
