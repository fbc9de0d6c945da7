//! The ten tasks of the Medical Segmentation Decathlon as MONAI's
//! `DecathlonDataset` downloads them: the archive name, its MD5 (both from
//! `monai/apps/datasets.py`, MONAI 1.6.1) and what it holds.

use anyhow::{Result, bail};

/// Where MONAI's `DecathlonDataset` downloads every task from.
pub const MSD_BASE_URL: &str = "https://msd-for-monai.s3-us-west-2.amazonaws.com";

/// One Decathlon task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsdTask {
    /// `TaskNN_Name`, the archive's and the dataset folder's name.
    pub name: &'static str,
    /// MD5 of `name.tar`.
    pub md5: &'static str,
    /// Modality and targets, in words.
    pub about: &'static str,
}

impl MsdTask {
    /// The archive's URL.
    pub fn url(&self) -> String {
        format!("{MSD_BASE_URL}/{}.tar", self.name)
    }

    /// The task number, 1 to 10.
    pub fn number(&self) -> u32 {
        self.name[4..6].parse().unwrap_or(0)
    }
}

/// Every task, in number order.
pub const TASKS: [MsdTask; 10] = [
    MsdTask {
        name: "Task01_BrainTumour",
        md5: "240a19d752f0d9e9101544901065d872",
        about: "multi-parametric MRI (FLAIR, T1w, T1gd, T2w as one 4-D image): oedema, non-enhancing and enhancing tumour",
    },
    MsdTask {
        name: "Task02_Heart",
        md5: "06ee59366e1e5124267b774dbd654057",
        about: "MRI: left atrium",
    },
    MsdTask {
        name: "Task03_Liver",
        md5: "a90ec6c4aa7f6a3d087205e23d4e6397",
        about: "portal venous CT: liver and tumour",
    },
    MsdTask {
        name: "Task04_Hippocampus",
        md5: "9d24dba78a72977dbd1d2e110310f31b",
        about: "MRI: anterior and posterior hippocampus",
    },
    MsdTask {
        name: "Task05_Prostate",
        md5: "35138f08b1efaef89d7424d2bcc928db",
        about: "multi-parametric MRI (T2, ADC as one 4-D image): peripheral and transition zones",
    },
    MsdTask {
        name: "Task06_Lung",
        md5: "8afd997733c7fc0432f71255ba4e52dc",
        about: "CT: lung tumours",
    },
    MsdTask {
        name: "Task07_Pancreas",
        md5: "4f7080cfca169fa8066d17ce6eb061e4",
        about: "portal venous CT: pancreas and tumour",
    },
    MsdTask {
        name: "Task08_HepaticVessel",
        md5: "641d79e80ec66453921d997fbf12a29c",
        about: "CT: hepatic vessels and tumour",
    },
    MsdTask {
        name: "Task09_Spleen",
        md5: "410d4a301da4e5b2f6f86ec3ddba524e",
        about: "portal venous CT: spleen",
    },
    MsdTask {
        name: "Task10_Colon",
        md5: "bad7a188931dc2f6acf72b08eb6202d0",
        about: "CT: colon cancer",
    },
];

/// The task `spec` names: its full name (`Task09_Spleen`), `Task09`, its
/// number (`9`, `09`) or its name alone (`spleen`), any case.
pub fn find(spec: &str) -> Result<MsdTask> {
    let s = spec.trim().to_ascii_lowercase();
    let number = s.strip_prefix("task").unwrap_or(&s);
    let number = number.split('_').next().unwrap_or(number);
    let hit = TASKS.iter().find(|t| {
        let name = t.name.to_ascii_lowercase();
        name == s
            || number.parse::<u32>().ok() == Some(t.number())
            || name.split_once('_').is_some_and(|(_, n)| n == s)
    });
    match hit {
        Some(t) => Ok(*t),
        None => bail!(
            "unknown Decathlon task '{spec}'; the tasks are {}",
            TASKS.map(|t| t.name).join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_found_by_name_number_or_organ() {
        for spec in ["Task09_Spleen", "task09", "9", "09", "Spleen", " SPLEEN "] {
            assert_eq!(find(spec).unwrap().name, "Task09_Spleen", "{spec}");
        }
        assert_eq!(find("3").unwrap().md5, "a90ec6c4aa7f6a3d087205e23d4e6397");
        assert_eq!(find("Task10_Colon").unwrap().number(), 10);
        let e = find("kidney").unwrap_err().to_string();
        assert!(
            e.contains("unknown Decathlon task 'kidney'") && e.contains("Task01_BrainTumour"),
            "{e}"
        );
        assert!(find("11").is_err() && find("0").is_err());
    }

    #[test]
    fn the_table_is_complete_and_well_formed() {
        for (i, t) in TASKS.iter().enumerate() {
            assert_eq!(t.number() as usize, i + 1);
            assert_eq!(t.md5.len(), 32);
            assert!(t.md5.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(t.url(), format!("{MSD_BASE_URL}/{}.tar", t.name));
        }
    }
}
