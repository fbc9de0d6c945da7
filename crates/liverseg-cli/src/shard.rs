//! Which share of a folder of cases this process segments: `--shard I/N`,
//! or the index a scheduler gives an array task (Slurm job arrays,
//! Kubernetes Indexed Jobs). Cases are sorted by name and shard `I` of `N`
//! takes every `N`-th from the `I`-th: the shards are disjoint, together
//! complete, and the same on every machine.

use std::fmt;

/// Shard `index` of `count` (numbered from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards share the cases.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The Kubernetes variable that carries the shard count: an Indexed Job
/// gives each pod `JOB_COMPLETION_INDEX` but not `completions`, so the Job
/// template passes it.
pub const K8S_COUNT_VAR: &str = "LIVERSEG_SHARD_COUNT";

fn new(index: i64, count: i64, source: &str) -> Result<Shard, String> {
    if count < 1 {
        return Err(format!("{source}: shard count {count} must be at least 1"));
    }
    if !(0..count).contains(&index) {
        return Err(format!(
            "{source}: shard {index} is outside 0..{count} (shards are numbered from 0)"
        ));
    }
    Ok(Shard {
        index: index as usize,
        count: count as usize,
    })
}

impl Shard {
    /// Parses `I/N`, as `--shard` takes it.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: expected I/N, e.g. 0/4"))?;
        let num = |v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("--shard {s}: {v:?} is not a whole number"))
        };
        new(num(i)?, num(n)?, &format!("--shard {s}"))
    }

    /// The shard the scheduler's environment gives, read through `var`:
    /// Slurm's `(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`
    /// (MIN 0 and STEP 1 when absent) of `SLURM_ARRAY_TASK_COUNT`, or Kubernetes'
    /// `JOB_COMPLETION_INDEX` of [`K8S_COUNT_VAR`]. `None` outside an array
    /// task; an error for a partial or inconsistent environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        let get = |name: &str| -> Result<Option<i64>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a whole number")),
            }
        };
        let slurm = (
            get("SLURM_ARRAY_TASK_ID")?,
            get("SLURM_ARRAY_TASK_COUNT")?,
            get("SLURM_ARRAY_TASK_MIN")?,
        );
        let (step, max) = (get("SLURM_ARRAY_TASK_STEP")?, get("SLURM_ARRAY_TASK_MAX")?);
        let k8s = (get("JOB_COMPLETION_INDEX")?, get(K8S_COUNT_VAR)?);
        match (slurm, k8s) {
            ((None, None, None), (None, None)) => Ok(None),
            ((Some(id), Some(count), min), (None, _)) => {
                // --array=MIN-MAX:STEP numbers its tasks MIN, MIN+STEP, ...;
                // a list (--array=1,4,9) has no such rule.
                let min = min.unwrap_or(0);
                let step = step.unwrap_or(1).max(1);
                let list = max.is_some_and(|max| (max - min) / step + 1 != count);
                if list || id < min || (id - min) % step != 0 {
                    return Err(format!(
                        "SLURM_ARRAY_TASK_ID {id} is not MIN + k x STEP of a range array (MIN {min}, STEP {step}, MAX {}, COUNT {count}): a list array does not number its tasks 0..COUNT; pass --shard I/N",
                        max.map_or("unset".into(), |m| m.to_string())
                    ));
                }
                new((id - min) / step, count, "the Slurm array environment").map(Some)
            }
            ((None, None, None), (Some(index), Some(count))) => {
                new(index, count, "the Kubernetes Indexed Job environment").map(Some)
            }
            ((None, None, None), (Some(_), None)) => Err(format!(
                "JOB_COMPLETION_INDEX is set but {K8S_COUNT_VAR} is not: pass the Job's completions to each pod, or --shard I/N"
            )),
            ((None, None, None), (None, Some(_))) => Err(format!(
                "{K8S_COUNT_VAR} is set but JOB_COMPLETION_INDEX is not (not an Indexed Job?); pass --shard I/N"
            )),
            ((Some(_), Some(_), _), (Some(_), _)) => Err(
                "both a Slurm array and a Kubernetes Indexed Job environment are set; pass --shard I/N".into(),
            ),
            _ => Err(
                "a partial Slurm array environment (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT go together); pass --shard I/N".into(),
            ),
        }
    }

    /// This shard's share of `cases`, which must be in their shared order
    /// (sorted by name).
    pub fn take<T>(&self, cases: Vec<T>) -> Vec<T> {
        cases
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, c)| c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn shards_are_disjoint_and_complete() {
        let cases: Vec<u32> = (0..11).collect();
        let mut all = Vec::new();
        for i in 0..4 {
            let s = Shard::parse(&format!("{i}/4")).unwrap();
            let part = s.take(cases.clone());
            assert!(part.iter().all(|c| *c as usize % 4 == i));
            all.extend(part);
        }
        all.sort();
        assert_eq!(all, cases);
        // More shards than cases: some are empty, none overlap.
        assert!(Shard::parse("5/6").unwrap().take(vec![1, 2]).is_empty());
    }

    #[test]
    fn bad_shards_are_refused() {
        for s in ["4/4", "-1/4", "0/0", "1", "a/2", "1/b", "2/-3"] {
            assert!(Shard::parse(s).is_err(), "{s}");
        }
        assert_eq!(
            Shard::parse(" 3 / 8 ").unwrap(),
            Shard { index: 3, count: 8 }
        );
    }

    #[test]
    fn schedulers_give_the_shard() {
        assert_eq!(Shard::from_env(env(&[])).unwrap(), None);
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_env(slurm).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        let no_min = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_env(no_min).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        // --array=0-15:4: tasks 0, 4, 8, 12 are shards 0..3 of 4.
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "12"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_env(stepped).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0"), (K8S_COUNT_VAR, "2")]);
        assert_eq!(
            Shard::from_env(k8s).unwrap(),
            Some(Shard { index: 0, count: 2 })
        );
    }

    #[test]
    fn partial_or_inconsistent_environments_are_errors() {
        for pairs in [
            &[("SLURM_ARRAY_TASK_ID", "1")][..],
            &[("SLURM_ARRAY_TASK_COUNT", "4")],
            &[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            &[
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            // --array=1,4,9: a list, MAX - MIN + 1 != COUNT.
            &[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
            &[("JOB_COMPLETION_INDEX", "1")],
            &[(K8S_COUNT_VAR, "3")],
            &[("JOB_COMPLETION_INDEX", "3"), (K8S_COUNT_VAR, "3")],
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("JOB_COMPLETION_INDEX", "1"),
            ],
        ] {
            assert!(Shard::from_env(env(pairs)).is_err(), "{pairs:?}");
        }
    }
}
