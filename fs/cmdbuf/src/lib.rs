//! Control-message parsing (placeholder, being written).
