//! The sync connector.
