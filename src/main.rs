//! The mailmoat binary: everything lives in the library; this only passes the arguments on.

fn main() {
    let code = mailmoat::cli::run(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
