//! The `lexecon` command.

fn main() {
    println!("lexecon {}", env!("CARGO_PKG_VERSION"));
}
