//! Round trips through our own DICOM writer and reader: a volume written as
//! a CT series reads back with the same voxels and geometry, and a label
//! volume written as a SEG against that series reads back exactly.

use liverseg_io::dicom::{self, ReadOptions, SegOptions, SegmentDef, WriteSeriesOptions};
use liverseg_io::{Affine, Volume};

fn affines() -> Vec<(&'static str, Affine)> {
    let (a, b) = (0.35f64, 0.2f64);
    vec![
        (
            "lps axial",
            Affine::from_spacing_origin([-0.7, -0.8, 2.5], [120.0, 95.5, -310.0]),
        ),
        (
            "ras axial",
            Affine::from_spacing_origin([0.9, 0.9, 3.0], [-100.0, -80.0, 20.0]),
        ),
        (
            "oblique",
            Affine::from_columns(
                [
                    [0.8 * a.cos(), 0.8 * a.sin(), 0.0],
                    [
                        -0.6 * a.sin() * b.cos(),
                        0.6 * a.cos() * b.cos(),
                        0.6 * b.sin(),
                    ],
                    [
                        2.0 * a.sin() * b.sin(),
                        -2.0 * a.cos() * b.sin(),
                        2.0 * b.cos(),
                    ],
                ],
                [10.0, -20.0, 30.0],
            ),
        ),
    ]
}

fn ct(affine: Affine) -> Volume<f32> {
    let dims = [9, 7, 5];
    let data = (0..dims.iter().product::<usize>())
        .map(|i| ((i * 37) % 2000) as f32 - 1000.0)
        .collect();
    Volume::new(dims, affine, data).unwrap()
}

#[test]
fn nifti_grid_to_series_and_back_is_exact() {
    for (name, affine) in affines() {
        let vol = ct(affine);
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("s");
        let written = dicom::write_series(&series, &vol, &WriteSeriesOptions::default()).unwrap();
        assert_eq!(written.slices.len(), 5, "{name}");
        let (back, header): (Volume<f32>, _) =
            dicom::read_with_header(&series, &ReadOptions::default()).unwrap();
        assert_eq!(back.dims(), vol.dims(), "{name}");
        let d = back.affine().max_abs_diff(vol.affine());
        assert!(d < 1e-4, "{name}: affine differs by {d} mm");
        assert!(back.data() == vol.data(), "{name}: voxels differ");
        assert_eq!(header.series_instance_uid, written.series_instance_uid);
        let uids: Vec<_> = header.slices.iter().map(|s| &s.sop_instance_uid).collect();
        let want: Vec<_> = written.slices.iter().map(|s| &s.sop_instance_uid).collect();
        assert_eq!(uids, want, "{name}: slice order");
    }
}

#[test]
fn label_to_seg_to_label_is_exact() {
    for (name, affine) in affines() {
        let vol = ct(affine);
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("s");
        let header = dicom::write_series(&series, &vol, &WriteSeriesOptions::default()).unwrap();
        let labels = vol.map(|v| u8::from(v > 0.0) + u8::from(v > 600.0));
        let seg_path = dir.path().join("seg.dcm");
        let opts = SegOptions {
            segments: vec![
                SegmentDef::liver(1),
                SegmentDef {
                    number: 2,
                    label: "Tumour".into(),
                    ..SegmentDef::liver(2)
                },
            ],
            ..Default::default()
        };
        dicom::write_seg(&seg_path, &labels, &vol, &header, &opts).unwrap();
        let seg = dicom::read_seg(&seg_path, Some((vol.dims(), vol.affine()))).unwrap();
        let back = seg.label_map().unwrap().unwrap();
        assert_eq!(back.dims(), labels.dims(), "{name}");
        assert!(back.data() == labels.data(), "{name}: labels differ");
        let names: Vec<_> = seg
            .segments
            .iter()
            .map(|(d, _)| (d.number, d.label.clone()))
            .collect();
        assert_eq!(
            names,
            vec![(1, "Liver".to_string()), (2, "Tumour".to_string())]
        );
        assert_eq!(
            seg.referenced_series_instance_uid,
            header.series_instance_uid
        );
        // Without the reference, the SEG's own frames rebuild a grid that
        // puts every labelled voxel at the same world position.
        let own = dicom::read_seg(&seg_path, None)
            .unwrap()
            .label_map()
            .unwrap()
            .unwrap();
        let inv = own.affine().inverse().unwrap();
        for k in 0..5 {
            for j in 0..7 {
                for i in 0..9 {
                    let v = labels.get(i, j, k).unwrap();
                    if v == 0 {
                        continue;
                    }
                    let p = inv.apply(vol.world(i as f64, j as f64, k as f64));
                    let q = p.map(|x| x.round());
                    assert!(
                        p.iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-3),
                        "{name}: off-grid {p:?}"
                    );
                    let got = own.get(q[0] as usize, q[1] as usize, q[2] as usize);
                    assert_eq!(got, Some(v), "{name}: voxel ({i},{j},{k})");
                }
            }
        }
    }
}
