//! `/proc/net` and `/proc/sys/net`.
