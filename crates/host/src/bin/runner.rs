//! A plugin runner on its own: the host's tests and benches start it as the
//! runner program. The server runs the same code as `connvault plugin-runner`.

fn main() -> std::process::ExitCode {
    connvault_plugin_host::runner::main()
}
