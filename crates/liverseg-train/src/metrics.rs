//! Spacing-aware segmentation metrics (filled in by the metrics work).
