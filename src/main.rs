//! The `pdchaos` command: parses arguments and hands over to [`pdchaos::cli::run`].

fn main() {
    let code = pdchaos::cli::main();
    std::process::exit(code);
}
