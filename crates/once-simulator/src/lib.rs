//! A local 1NCE Management API.
