//! TODO-module ai
