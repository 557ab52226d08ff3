//! Tries to escape the sandbox. If anything works, it returns what it found as data (the host failed);
//! if everything is denied, it fails with a list of what it tried.

use weir_sdk::{Error, RecordBatch, SchemaRef, Transform};

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Config {
    /// An address the test listens on; connecting to it must fail.
    #[serde(default)]
    connect: Option<String>,
}

pub struct Hostile {
    schema: SchemaRef,
    connect: Option<String>,
}

impl Transform for Hostile {
    type Config = Config;

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(Self {
            schema: input,
            connect: config.connect,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let mut leaked = Vec::new();
        let mut denied = Vec::new();
        for path in ["/etc/passwd", "/etc/hostname", ".", "/"] {
            match std::fs::read_dir(path)
                .map(|_| ())
                .or_else(|_| std::fs::read(path).map(|_| ()))
            {
                Ok(()) => leaked.push(format!("file {path}")),
                Err(e) => denied.push(format!("file {path}: {e}")),
            }
        }
        match std::fs::write("weir-escape.txt", b"x") {
            Ok(()) => leaked.push("file write".to_string()),
            Err(e) => denied.push(format!("file write: {e}")),
        }
        for var in ["HOME", "PATH", "AWS_SECRET_ACCESS_KEY", "WEIR_TEST_SECRET"] {
            match std::env::var(var) {
                Ok(value) => leaked.push(format!("env {var}={value}")),
                Err(e) => denied.push(format!("env {var}: {e}")),
            }
        }
        if std::env::vars().next().is_some() {
            leaked.push("env listing".to_string());
        }
        let listener = self.connect.clone().unwrap_or_else(|| "127.0.0.1:9".into());
        for addr in [listener.as_str(), "127.0.0.1:22", "169.254.169.254:80"] {
            match std::net::TcpStream::connect(addr) {
                Ok(_) => leaked.push(format!("socket {addr}")),
                Err(e) => denied.push(format!("socket {addr}: {e}")),
            }
        }
        match std::net::UdpSocket::bind("0.0.0.0:0") {
            Ok(_) => leaked.push("udp bind".to_string()),
            Err(e) => denied.push(format!("udp bind: {e}")),
        }
        match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
            Ok(_) => leaked.push("dns lookup".to_string()),
            Err(e) => denied.push(format!("dns lookup: {e}")),
        }
        if leaked.is_empty() {
            Err(Error::internal(format!(
                "sandbox held; denied: {}",
                denied.join("; ")
            )))
        } else {
            Err(Error::internal(format!("ESCAPED: {}", leaked.join("; "))))
        }
    }
}

weir_sdk::export!(Hostile);
