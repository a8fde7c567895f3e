//! The `blindmatch` binary: everything lives in `blindmatch_node::cli`.

fn main() -> std::process::ExitCode {
    blindmatch_node::cli::main()
}
