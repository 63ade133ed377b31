//! Host plan tests.
