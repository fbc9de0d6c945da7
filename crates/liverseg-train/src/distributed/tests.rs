//! The collectives with threads as ranks, over real TCP connections on
//! 127.0.0.1.

use super::*;
use std::collections::HashMap;

fn world(rank: usize, size: usize) -> World {
    World {
        rank,
        size,
        local_rank: rank,
    }
}

/// Runs `f(group)` on `size` ranks (threads) meeting through a file.
fn on_ranks<R: Send + 'static>(
    size: usize,
    f: impl Fn(&mut Group) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let dir = tempfile::tempdir().unwrap();
    let rdv = Rendezvous::File(dir.path().join("rendezvous"), "127.0.0.1".into());
    let f = std::sync::Arc::new(f);
    let handles: Vec<_> = (0..size)
        .map(|rank| {
            let (rdv, f) = (rdv.clone(), f.clone());
            std::thread::spawn(move || {
                let mut g = Group::connect(world(rank, size), &rdv, "run", &Device::Cpu).unwrap();
                f(&mut g)
            })
        })
        .collect();
    let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(dir);
    out
}

#[test]
fn sums_in_rank_order_and_broadcasts_from_rank_zero() {
    let results = on_ranks(3, |g| {
        let r = g.world().rank as f32;
        let t = Tensor::new(&[r + 1.0, 10.0 * (r + 1.0), -r], &Device::Cpu).unwrap();
        let sum = g.all_reduce_sum(&t).unwrap().to_vec1::<f32>().unwrap();
        let mut counts = [r as f64 + 0.25, 1e12];
        g.sum(&mut counts).unwrap();
        let v = Var::new(&[r, r], &Device::Cpu).unwrap();
        g.broadcast_from_root(std::slice::from_ref(&v)).unwrap();
        g.barrier().unwrap();
        (sum, counts, v.as_tensor().to_vec1::<f32>().unwrap())
    });
    for (sum, counts, b) in results {
        assert_eq!(sum, vec![6.0, 60.0, -3.0]);
        // Counts travel as f64: 3e12 + 3.75 survives exactly.
        assert_eq!(counts, [3.75, 3e12]);
        assert_eq!(b, vec![0.0, 0.0]);
    }
}

#[test]
fn mean_gradients_average_every_variable_and_fill_missing_ones() {
    let results = on_ranks(2, |g| {
        let rank = g.world().rank;
        let vars = [
            Var::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
            Var::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        ];
        let mut grads = vec![
            Some(Tensor::full(rank as f32 * 2.0, (2, 2), &Device::Cpu).unwrap()),
            // Rank 1 has no gradient for the second variable.
            (rank == 0).then(|| Tensor::new(&[2f32, 4.0, 6.0], &Device::Cpu).unwrap()),
        ];
        g.mean_gradients(&vars, &mut grads).unwrap();
        grads
            .into_iter()
            .map(|t| t.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect::<Vec<_>>()
    });
    for g in results {
        assert_eq!(g[0], vec![1.0; 4]);
        assert_eq!(g[1], vec![1.0, 2.0, 3.0]);
    }
}

#[test]
fn a_rank_of_another_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rdv = Rendezvous::File(dir.path().join("r"), "127.0.0.1".into());
    let r0 = {
        let rdv = rdv.clone();
        std::thread::spawn(move || {
            tcp::Star::connect(world(0, 2), &rdv, "run A", Duration::from_secs(3)).map(|_| ())
        })
    };
    let other = tcp::Star::connect(world(1, 2), &rdv, "run B", Duration::from_secs(3));
    let e = other.err().expect("refused").to_string();
    assert!(e.contains("refused rank 1"), "{e}");
    let e = r0.join().unwrap().unwrap_err().to_string();
    assert!(e.contains("did not join"), "{e}");
}

#[test]
fn world_from_torchrun_and_slurm_variables() {
    let vars = |pairs: &[(&str, &str)]| {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(move |k| m.get(k).cloned())
    };
    assert_eq!(vars(&[]).unwrap(), World::SINGLE);
    assert_eq!(
        vars(&[("RANK", "2"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "0")]).unwrap(),
        World {
            rank: 2,
            size: 4,
            local_rank: 0
        }
    );
    assert_eq!(
        vars(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "1")
        ])
        .unwrap(),
        World {
            rank: 1,
            size: 2,
            local_rank: 1
        }
    );
    // One Slurm task is a single process (an sbatch without srun).
    assert_eq!(
        vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]).unwrap(),
        World::SINGLE
    );
    assert!(vars(&[("RANK", "4"), ("WORLD_SIZE", "4")]).is_err());
    assert!(vars(&[("RANK", "x"), ("WORLD_SIZE", "4")]).is_err());
}
