//! The port an example serves on: `--port N` (or `--port=N`), else `PORT`,
//! else 8080; 0 picks a free one. Shared by the examples that serve.

/// The port, or what is wrong with the command line, in words.
pub fn port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = Some(args.next().ok_or("--port needs a number")?),
            other => match other.strip_prefix("--port=") {
                Some(n) => port = Some(n.to_owned()),
                None => return Err(format!("unknown argument `{other}`: try --port N")),
            },
        }
    }
    match port.or_else(|| std::env::var("PORT").ok()) {
        None => Ok(8080),
        Some(text) => text
            .parse()
            .map_err(|_| format!("the port must be a number from 0 to 65535, not `{text}`")),
    }
}
