//! ELF parsing and mapping.
