//! Typed client of the 1NCE Management API.
