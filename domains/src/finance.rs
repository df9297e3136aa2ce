//! TODO-module finance
