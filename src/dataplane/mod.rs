//! The sans-IO switch core.
