//! The `socklab` command; all the work is in the library.

fn main() {
    std::process::exit(socklab::cmd::main());
}
