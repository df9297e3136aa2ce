//! TODO-module healthcare
