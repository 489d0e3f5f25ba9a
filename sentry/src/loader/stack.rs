//! The initial process stack.
