use std::io::{Read, Write};
fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).unwrap();
    let out = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    std::io::stdout().write_all(&out).unwrap();
}
