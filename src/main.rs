fn main() -> std::process::ExitCode {
    registrish_gen::run()
}
