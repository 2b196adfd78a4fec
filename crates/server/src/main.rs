//! The `idm-otp` binary.

fn main() -> std::process::ExitCode {
    idm_otp_server::cli::main()
}
