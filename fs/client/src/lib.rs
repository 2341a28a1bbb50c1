//! 9P client (placeholder, being written).
