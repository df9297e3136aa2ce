//! TODO-module packs
