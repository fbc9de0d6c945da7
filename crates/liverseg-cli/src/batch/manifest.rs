//! A batch's manifest: a CSV or TSV file naming each case and its inputs.
//!
//! The first row is a header. One column is the case id (`id`, `case` or
//! `case_id`); the inputs are the column `input`, or columns whose names
//! start with `input`, `image` or `channel` (one per channel, in their
//! order, e.g. `input_0000,input_0001`); an optional `output` column names
//! each case's mask inside the output folder. An input is a NIfTI file or
//! a DICOM series folder; relative paths are taken from the manifest's
//! folder. Fields may be quoted with `"` (a path holding a comma).

use std::path::{Path, PathBuf};

/// One case of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCase {
    /// The case id: unique in the batch, the name of its outputs.
    pub id: String,
    /// Its input(s): one NIfTI file or DICOM series folder, or one NIfTI
    /// file per channel.
    pub inputs: Vec<PathBuf>,
    /// The mask's file name inside the output folder, when the manifest
    /// gives one.
    pub output: Option<String>,
}

/// Splits one line into fields: `sep`-separated, `"`-quoted fields may
/// hold the separator and `""` for a quote.
fn fields(line: &str, sep: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, c) if c == sep => {
                out.push(if was_quoted {
                    std::mem::take(&mut cur)
                } else {
                    std::mem::take(&mut cur).trim().to_string()
                });
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quote".into());
    }
    out.push(if was_quoted {
        cur
    } else {
        cur.trim().to_string()
    });
    Ok(out)
}

/// Checks that a case id can name files: not empty, no path separator, not
/// hidden.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an empty case id".into());
    }
    if id.contains(['/', '\\', '\0']) || id.starts_with('.') {
        return Err(format!(
            "case id {id:?} cannot name a file (no '/', '\\', or leading '.')"
        ));
    }
    Ok(())
}

/// Checks an output name: one file name inside the output folder.
fn check_output(name: &str) -> Result<(), String> {
    let p = Path::new(name);
    let plain = p.components().count() == 1
        && matches!(p.components().next(), Some(std::path::Component::Normal(_)));
    if !plain || name.starts_with('.') {
        return Err(format!(
            "output {name:?} must be a file name inside the output folder (no folders, no leading '.')"
        ));
    }
    Ok(())
}

/// Parses a manifest's text; `base` is the folder relative inputs are
/// taken from, `tsv` picks the tab separator. Errors name the line.
pub fn parse(text: &str, base: &Path, tsv: bool) -> Result<Vec<BatchCase>, String> {
    let sep = if tsv { '\t' } else { ',' };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (_, header) = lines.next().ok_or("no header row and no cases")?;
    let header: Vec<String> = fields(header.trim_start_matches('\u{feff}'), sep)
        .map_err(|e| format!("line 1: {e}"))?
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let id_col = header
        .iter()
        .position(|h| matches!(h.as_str(), "id" | "case" | "case_id"))
        .ok_or_else(|| {
            format!("the header {header:?} has no case id column (id, case or case_id)")
        })?;
    let input_cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.starts_with("input") || h.starts_with("image") || h.starts_with("channel")
        })
        .map(|(i, _)| i)
        .collect();
    if input_cols.is_empty() {
        return Err(format!(
            "the header {header:?} has no input column (input, or input_0000, input_0001, ... per channel)"
        ));
    }
    let output_col = header.iter().position(|h| h == "output");
    let mut cases = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in lines {
        let at = |e: String| format!("line {}: {e}", n + 1);
        let f = fields(line, sep).map_err(at)?;
        if f.len() != header.len() {
            return Err(at(format!(
                "{} fields where the header has {}",
                f.len(),
                header.len()
            )));
        }
        let id = f[id_col].clone();
        check_id(&id).map_err(at)?;
        if !seen.insert(id.clone()) {
            return Err(at(format!("case id {id:?} appears twice")));
        }
        let inputs: Vec<PathBuf> = input_cols
            .iter()
            .map(|&c| &f[c])
            .filter(|v| !v.is_empty())
            .map(|v| base.join(v))
            .collect();
        if inputs.len() != input_cols.len() {
            return Err(at(format!("case {id:?} has an empty input")));
        }
        let output = match output_col.map(|c| f[c].clone()) {
            Some(o) if !o.is_empty() => {
                check_output(&o).map_err(at)?;
                Some(o)
            }
            _ => None,
        };
        cases.push(BatchCase { id, inputs, output });
    }
    Ok(cases)
}

/// True when `path` names a manifest (`.csv` or `.tsv`).
pub fn is_manifest(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".csv") || name.ends_with(".tsv")
}

/// Reads a manifest file (`.tsv`: tab-separated; otherwise commas).
pub fn read(path: &Path) -> Result<Vec<BatchCase>, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| at(e.to_string()))?;
    liverseg_io::budget::check("the manifest", u128::from(meta.len()), 1)
        .map_err(|b| at(b.to_string()))?;
    let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let tsv = path
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".tsv");
    parse(&text, base, tsv).map_err(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_give_ids_inputs_and_outputs() {
        let text = "\u{feff}ID,input_0000,input_0001,output\n\
                    # a comment\n\
                    b, b_0.nii.gz ,/abs/b_1.nii.gz,\n\
                    a,\"dir, with comma\",a_1.nii.gz,a_mask.nii.gz\n";
        let cases = parse(text, Path::new("/base"), false).unwrap();
        assert_eq!(
            cases,
            vec![
                BatchCase {
                    id: "b".into(),
                    inputs: vec!["/base/b_0.nii.gz".into(), "/abs/b_1.nii.gz".into()],
                    output: None,
                },
                BatchCase {
                    id: "a".into(),
                    inputs: vec!["/base/dir, with comma".into(), "/base/a_1.nii.gz".into()],
                    output: Some("a_mask.nii.gz".into()),
                },
            ]
        );
        let tsv = parse("case\timage\nx\tct dir\n", Path::new("d"), true).unwrap();
        assert_eq!(tsv[0].inputs, vec![PathBuf::from("d/ct dir")]);
    }

    #[test]
    fn bad_manifests_name_the_line() {
        let base = Path::new(".");
        for (text, want) in [
            ("input\nx.nii.gz\n", "no case id column"),
            ("id,path\na,x\n", "no input column"),
            (
                "id,input\na,x\na,y\n",
                "line 3: case id \"a\" appears twice",
            ),
            ("id,input\na\n", "line 2: 1 fields"),
            ("id,input\n../a,x\n", "cannot name a file"),
            ("id,input\n.a,x\n", "cannot name a file"),
            ("id,input,output\na,x,../m.nii.gz\n", "must be a file name"),
            ("id,input\na,\"x\n", "unterminated quote"),
            ("id,input\na,\n", "empty input"),
            ("", "no header"),
        ] {
            let e = parse(text, base, false).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
