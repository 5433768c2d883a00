//! Test harness for real HAProxy processes.
