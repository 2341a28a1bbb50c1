//! Directory export (placeholder, being written).
