//! Post-processing of predicted masks (argmax, threshold, largest connected
//! component, hole filling).
