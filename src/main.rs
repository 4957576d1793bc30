fn main() {
    println!("mailward {}", env!("CARGO_PKG_VERSION"));
}
