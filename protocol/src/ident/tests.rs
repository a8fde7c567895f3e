//! Unit and property tests for identifier normalisation.
