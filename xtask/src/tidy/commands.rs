//! The commands the Markdown files show must still parse.
//!
//! From every indented (4-space) and fenced shell code block, lines joined
//! across `\` continuations, this takes the commands that run liverseg:
//! `cargo run [--release] -p liverseg-cli -- ARGS`, `liverseg ARGS` (or a
//! path ending in `/liverseg`) and `cargo xtask SUB ARGS` (or `cargo run -p
//! xtask -- SUB ARGS`). A shell comment, redirection or pipe ends the
//! command. liverseg commands run the CLI binary with `LIVERSEG_PARSE_ONLY=1`,
//! which parses the arguments and exits (0, or 2 with clap's reason); xtask
//! commands are parsed in process by xtask's own [`crate::Cli`].

use super::{Problem, Report};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a parse-only run of the CLI may take before it is stopped.
const PARSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Fenced-block languages whose lines are shell commands.
const SHELL_FENCES: [&str; 7] = ["", "sh", "bash", "shell", "console", "zsh", "text"];

/// A command of a Markdown file, ready to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// Arguments of the `liverseg` binary (without the program name).
    Cli(Vec<String>),
    /// Arguments of `cargo xtask` (without the program name).
    Xtask(Vec<String>),
}

/// Parses every liverseg and xtask command of `markdown` (path, text) and
/// adds a problem for each that does not parse. The CLI binary is built (or
/// found fresh) only when some file shows a liverseg command; when it cannot
/// be built, the xtask commands are still checked and the error returned.
pub fn check(root: &Path, markdown: &[(String, String)], report: &mut Report) -> Result<()> {
    let mut cli: Option<Result<PathBuf>> = None;
    let (mut cli_count, mut xtask_count) = (0, 0);
    let mut parse = |p: &Parse| -> Result<Option<String>> {
        match p {
            Parse::Xtask(args) => {
                xtask_count += 1;
                Ok(parse_xtask(args))
            }
            Parse::Cli(args) => match cli.get_or_insert_with(|| cli_binary(root)) {
                Ok(bin) => {
                    cli_count += 1;
                    run_cli(bin, args, root)
                }
                // Reported once, below.
                Err(_) => Ok(None),
            },
        }
    };
    for (path, text) in markdown {
        report
            .problems
            .extend(check_markdown(path, text, &mut parse)?);
    }
    eprintln!(
        "tidy: {cli_count} liverseg and {xtask_count} xtask commands of {} Markdown files parsed",
        markdown.len()
    );
    match cli {
        Some(Err(e)) => Err(e.context("the liverseg commands of the docs were not checked")),
        _ => Ok(()),
    }
}

/// The problems of one Markdown file: each command for which `parse` gives
/// a reason it does not parse.
pub fn check_markdown(
    path: &str,
    text: &str,
    parse: &mut dyn FnMut(&Parse) -> Result<Option<String>>,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (line, command) in code_commands(text) {
        let Some(p) = classify(&shell_words(&command)) else {
            continue;
        };
        if let Some(why) = parse(&p)? {
            problems.push(Problem {
                path: path.to_owned(),
                line,
                what: format!("`{command}` does not parse: {why}"),
            });
        }
    }
    Ok(problems)
}

/// The lines of the shell code blocks of a Markdown text, `\` continuations
/// joined, each with the 1-based number of its first line.
pub fn code_commands(text: &str) -> Vec<(usize, String)> {
    // (line number, code line, whether the next code line continues the
    // same block)
    let mut code: Vec<(usize, &str, bool)> = Vec::new();
    let mut fence: Option<(String, bool)> = None; // (marker, shell block)
    let mut prev_blank = true;
    let mut in_indented = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some((marker, shell)) = &fence {
            // A fence closes with a run of the same character at least as
            // long as the one that opened it, and nothing else.
            let close = trimmed.trim_end();
            if close.len() >= marker.len() && close.chars().all(|c| marker.starts_with(c)) {
                fence = None;
                end_block(&mut code);
                prev_blank = true;
            } else if *shell {
                code.push((i + 1, line, true));
            }
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent < 4 && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            let ch = trimmed.chars().next().expect("starts with a fence");
            let marker: String = trimmed.chars().take_while(|&c| c == ch).collect();
            let info = trimmed[marker.len()..].trim();
            let lang = info.split([' ', ',', '{']).next().unwrap_or("");
            fence = Some((marker, SHELL_FENCES.contains(&lang)));
            end_block(&mut code);
            in_indented = false;
            prev_blank = false;
            continue;
        }
        let is_code = !trimmed.is_empty()
            && (line.starts_with("    ") || line.starts_with('\t'))
            && (prev_blank || in_indented);
        if is_code {
            code.push((i + 1, line, true));
            in_indented = true;
        } else if !trimmed.is_empty() {
            end_block(&mut code);
            in_indented = false;
        }
        prev_blank = trimmed.is_empty();
    }

    let mut commands = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line, same_block) in code {
        let line = line.trim();
        let (start, mut joined) = match pending.take() {
            Some((start, text)) => (start, text + " "),
            None => (n, String::new()),
        };
        match line.strip_suffix('\\') {
            Some(head) if same_block => {
                joined.push_str(head.trim_end());
                pending = Some((start, joined));
            }
            _ => {
                joined.push_str(line.strip_suffix('\\').unwrap_or(line).trim_end());
                commands.push((start, joined));
            }
        }
    }
    if let Some(p) = pending {
        commands.push(p);
    }
    commands.retain(|(_, c)| !c.is_empty());
    commands
}

/// Marks the last code line as the end of its block, so that a trailing `\`
/// does not join it to the next block.
fn end_block(code: &mut [(usize, &str, bool)]) {
    if let Some(last) = code.last_mut() {
        last.2 = false;
    }
}

/// Splits a shell line into words as `sh` would for a simple command:
/// quotes and backslashes are honoured, and a comment, pipe, redirection,
/// `;` or `&` ends the command. Variables and globs are kept as written.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            word.push(chars.next().expect("peeked"));
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '#' if !in_word => break,
            '|' | ';' | '&' | '<' | '>' => {
                // `2>file`: the digits were a file descriptor, not a word.
                if in_word && !word.chars().all(|d| d.is_ascii_digit()) {
                    words.push(std::mem::take(&mut word));
                }
                return words;
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// What a command line runs, if it is a liverseg or xtask command.
pub fn classify(words: &[String]) -> Option<Parse> {
    // Skip a `$ ` prompt and leading `NAME=value` assignments.
    let mut words = words;
    while let Some((first, rest)) = words.split_first() {
        let assignment = first.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if first == "$" || assignment {
            words = rest;
        } else {
            break;
        }
    }
    let (program, args) = words.split_first()?;
    if program == "liverseg" || program.ends_with("/liverseg") {
        return Some(Parse::Cli(args.to_vec()));
    }
    if program != "cargo" {
        return None;
    }
    let (sub, args) = args.split_first()?;
    match sub.as_str() {
        "xtask" => Some(Parse::Xtask(args.to_vec())),
        "run" => {
            let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
            let (cargo_args, rest) = (&args[..split], args.get(split + 1..).unwrap_or(&[]));
            let mut package = None;
            let mut bin = None;
            let mut it = cargo_args.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-p" | "--package" => package = it.next().map(String::as_str),
                    "--bin" => bin = it.next().map(String::as_str),
                    _ => {
                        if let Some(p) = a.strip_prefix("--package=").or(a.strip_prefix("-p")) {
                            package = Some(p);
                        } else if let Some(b) = a.strip_prefix("--bin=") {
                            bin = Some(b);
                        }
                    }
                }
            }
            match (package, bin) {
                (Some("liverseg-cli"), _) | (_, Some("liverseg")) => {
                    Some(Parse::Cli(rest.to_vec()))
                }
                (Some("xtask"), _) => Some(Parse::Xtask(rest.to_vec())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `None` when xtask's command line accepts `args`, else clap's reason.
pub fn parse_xtask(args: &[String]) -> Option<String> {
    let argv = std::iter::once("cargo xtask").chain(args.iter().map(String::as_str));
    match <crate::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(_) => None,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => None,
            _ => Some(first_line(&e.render().to_string())),
        },
    }
}

/// Runs the CLI binary `bin` on `args` with `LIVERSEG_PARSE_ONLY=1` in
/// `dir`: `None` when it exits 0, else the exit status and the first line
/// it printed to stderr (clap's reason).
pub fn run_cli(bin: &Path, args: &[String], dir: &Path) -> Result<Option<String>> {
    let mut child = Command::new(bin)
        .args(args)
        .env("LIVERSEG_PARSE_ONLY", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    // Read stderr on a thread, so that a chatty child cannot fill the pipe
    // and stall while this one waits for it to exit.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > PARSE_TIMEOUT {
            child.kill()?;
            child.wait()?;
            bail!(
                "{} {:?} ran for {}s with LIVERSEG_PARSE_ONLY=1 and was stopped: \
                 the binary should exit right after parsing its arguments",
                bin.display(),
                args,
                PARSE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(None);
    }
    let code = status
        .code()
        .map_or_else(|| format!("{status}"), |c| format!("exit {c}"));
    Ok(Some(format!("{code}: {}", first_line(&stderr))))
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(nothing on stderr)")
        .to_owned()
}

/// The `liverseg` binary of the current sources: the profile whose binary
/// is newest in cargo's target folder (debug when there is none) is built,
/// which cargo skips when it is fresh.
fn cli_binary(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `cargo metadata`")?;
    if !out.status.success() {
        bail!("`cargo metadata` failed");
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("`cargo metadata` printed no JSON")?;
    let target = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` names no target_directory")?;
    let name = format!("liverseg{}", std::env::consts::EXE_SUFFIX);
    let newest = ["debug", "release"]
        .into_iter()
        .filter_map(|profile| {
            let bin = target.join(profile).join(&name);
            let modified = std::fs::metadata(&bin).and_then(|m| m.modified()).ok()?;
            Some((modified, profile, bin))
        })
        .max();
    let (profile, bin) = match newest {
        Some((_, profile, bin)) => (profile, bin),
        None => ("debug", target.join("debug").join(&name)),
    };
    eprintln!("tidy: checking documented commands with {}", bin.display());
    let mut build = Command::new(&cargo);
    build
        .current_dir(root)
        .args(["build", "--package", "liverseg-cli", "--bin", "liverseg"]);
    if profile == "release" {
        build.arg("--release");
    }
    let status = build.status().context("cannot run `cargo build`")?;
    if !status.success() {
        bail!("`cargo build -p liverseg-cli` failed, so the documented commands cannot be checked");
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shell_words(s)
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    const README: &str = "\
# Title

Some prose with `liverseg info ct.nii.gz | head -1` inline: not a block.

    sudo apt-get install -y cmake
    cargo install --path crates/liverseg-cli     # installs the binary

Then:

    cargo run --release -p liverseg-cli -- predict --model m.safetensors \\
        --input ct.nii.gz --output liver.nii.gz

- a list item

```sh
cargo xtask synth --cases 3
liverseg train --print-config > train.toml
```

```rust
liverseg::not_a_command();
```

    crates/liverseg-cli   the `liverseg` binary
";

    #[test]
    fn commands_come_from_code_blocks_with_continuations_joined() {
        let commands = code_commands(README);
        assert_eq!(
            commands,
            vec![
                (5, "sudo apt-get install -y cmake".to_owned()),
                (
                    6,
                    "cargo install --path crates/liverseg-cli     # installs the binary".to_owned()
                ),
                (
                    10,
                    "cargo run --release -p liverseg-cli -- predict --model m.safetensors \
                     --input ct.nii.gz --output liver.nii.gz"
                        .to_owned()
                ),
                (16, "cargo xtask synth --cases 3".to_owned()),
                (17, "liverseg train --print-config > train.toml".to_owned()),
                (24, "crates/liverseg-cli   the `liverseg` binary".to_owned()),
            ]
        );
        let parsed: Vec<(usize, Parse)> = commands
            .iter()
            .filter_map(|(n, c)| Some((*n, classify(&words(c))?)))
            .collect();
        assert_eq!(
            parsed,
            vec![
                (
                    10,
                    Parse::Cli(strings(&[
                        "predict",
                        "--model",
                        "m.safetensors",
                        "--input",
                        "ct.nii.gz",
                        "--output",
                        "liver.nii.gz"
                    ]))
                ),
                (16, Parse::Xtask(strings(&["synth", "--cases", "3"]))),
                (17, Parse::Cli(strings(&["train", "--print-config"]))),
            ]
        );
    }

    #[test]
    fn an_indented_line_after_prose_is_no_code_block() {
        let text = "A paragraph\n    liverseg continues --the paragraph\n\n    liverseg demo\n";
        assert_eq!(code_commands(text), vec![(4, "liverseg demo".to_owned())]);
    }

    #[test]
    fn a_fence_closes_only_with_a_fence_as_long() {
        let text = "````sh\n```\nliverseg a\n`````\nliverseg b\n\n~~~\nliverseg c\n~~~\n";
        assert_eq!(
            code_commands(text),
            vec![
                (2, "```".to_owned()),
                (3, "liverseg a".to_owned()),
                (8, "liverseg c".to_owned())
            ]
        );
    }

    #[test]
    fn shell_words_follow_sh() {
        assert_eq!(
            words("a 'b c' \"d \\\"e\\\"\" f\\ g # comment"),
            strings(&["a", "b c", "d \"e\"", "f g"])
        );
        assert_eq!(words("x --y=#1 | head"), strings(&["x", "--y=#1"]));
        assert_eq!(words("x y 2>/dev/null"), strings(&["x", "y"]));
        assert_eq!(words("x y>out"), strings(&["x", "y"]));
        assert_eq!(words("x && y"), strings(&["x"]));
    }

    #[test]
    fn classify_knows_the_ways_to_run_liverseg_and_xtask() {
        let cli = |s: &[&str]| Some(Parse::Cli(strings(s)));
        let xtask = |s: &[&str]| Some(Parse::Xtask(strings(s)));
        assert_eq!(
            classify(&words("cargo run -p liverseg-cli -- demo")),
            cli(&["demo"])
        );
        assert_eq!(
            classify(&words(
                "cargo run --release --package=liverseg-cli --features cuda -- info x"
            )),
            cli(&["info", "x"])
        );
        assert_eq!(
            classify(&words("cargo run --bin liverseg -- demo")),
            cli(&["demo"])
        );
        assert_eq!(classify(&words("cargo run -p liverseg-cli")), cli(&[]));
        assert_eq!(
            classify(&words("$ RUST_LOG=debug target/release/liverseg info x")),
            cli(&["info", "x"])
        );
        assert_eq!(classify(&words("cargo xtask split")), xtask(&["split"]));
        assert_eq!(
            classify(&words("cargo run -p xtask -- split")),
            xtask(&["split"])
        );
        for other in [
            "cargo test --workspace",
            "cargo run -p other -- demo",
            "cargo bench -p liverseg-io --bench io -- --only x",
            "python x.py --liverseg target/release/liverseg",
            "liverseg-cli demo",
            "",
        ] {
            assert_eq!(classify(&words(other)), None, "{other}");
        }
    }

    #[test]
    fn xtask_commands_parse_with_xtask_s_own_cli() {
        assert_eq!(parse_xtask(&strings(&["synth", "--cases", "3"])), None);
        assert_eq!(parse_xtask(&strings(&["split", "--help"])), None);
        let why = parse_xtask(&strings(&["synth", "--cases", "3", "--bogus"])).unwrap();
        assert!(why.contains("--bogus"), "{why}");
        assert!(parse_xtask(&strings(&["no-such-task"])).is_some());
        assert!(
            parse_xtask(&strings(&["synth"])).is_some(),
            "--cases is required"
        );
    }

    #[test]
    fn a_bad_command_is_a_problem_on_its_line() {
        let text = "Run:\n\n    cargo xtask synth --cases 3\n    cargo xtask synth --bogus\n\n    liverseg demo --out x\n";
        let mut seen = Vec::new();
        let mut parse = |p: &Parse| -> Result<Option<String>> {
            seen.push(p.clone());
            Ok(match p {
                Parse::Xtask(args) => parse_xtask(args),
                Parse::Cli(args) => args
                    .contains(&"--out".to_owned())
                    .then(|| "exit 2: error: unexpected argument '--out' found".to_owned()),
            })
        };
        let problems = check_markdown("README.md", text, &mut parse).unwrap();
        assert_eq!(seen.len(), 3);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with("README.md:4: `cargo xtask synth --bogus` does not parse: error:"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "README.md:6: `liverseg demo --out x` does not parse: \
             exit 2: error: unexpected argument '--out' found"
        );
    }

    /// The CLI runner against a stand-in binary that, like liverseg's, exits
    /// 2 with a reason on stderr for arguments it does not know.
    #[cfg(unix)]
    #[test]
    fn run_cli_reports_the_exit_status_and_reason() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("liverseg");
        std::fs::write(
            &bin,
            "#!/bin/sh\n\
             [ \"$LIVERSEG_PARSE_ONLY\" = 1 ] || { echo 'not parse-only' >&2; exit 3; }\n\
             for a in \"$@\"; do\n\
               case \"$a\" in --bogus) printf '\\nerror: unexpected argument %s found\\n\\nUsage: liverseg\\n' \"$a\" >&2; exit 2;; esac\n\
             done\n\
             exit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            run_cli(&bin, &strings(&["demo"]), dir.path()).unwrap(),
            None
        );
        assert_eq!(
            run_cli(&bin, &strings(&["demo", "--bogus"]), dir.path()).unwrap(),
            Some("exit 2: error: unexpected argument --bogus found".to_owned())
        );
    }
}
