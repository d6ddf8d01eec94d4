//! TODO: hook
