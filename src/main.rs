use std::process::ExitCode;

fn main() -> ExitCode {
    qnet_node::command::main()
}
