//! What the console knows about `edgemx.toml`: the sections, their keys, the kind of value
//! each takes and a line of help. Used for `set`/`delete` paths, `?` help, completion and
//! the typing of values; validation proper stays with `Config::parse` at commit.
//!
//! A key added to the configuration needs a line here to be reachable with `set` (`import`
//! takes any key).

/// How a section is addressed in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Keys at the top of the file (`hostname`).
    Top,
    /// `[name]`.
    Table,
    /// `[[name]]`, one entry per value of its identifying key (`domain NAME`).
    Array {
        id: &'static str,
        placeholder: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str(&'static str),
    List(&'static str),
    Int,
    Float,
    Bool,
    Enum(&'static [&'static str]),
    /// Bytes: `4096` or `25MiB`.
    Size,
    /// A duration: `30s`, `5m`.
    Span,
}

pub struct Section {
    pub name: &'static str,
    pub shape: Shape,
    pub help: &'static str,
    pub keys: &'static [Key],
}

pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn k(name: &'static str, kind: Kind, help: &'static str) -> Key {
    Key { name, kind, help }
}

/// The string form; the table form (pins, CA, client certificate) goes through `import`.
const TLS_POLICY: Kind = Kind::Enum(&["none", "opportunistic", "required", "verify", "pin"]);

pub static SECTIONS: &[Section] = &[
    Section {
        name: "",
        shape: Shape::Top,
        help: "",
        keys: &[
            k(
                "hostname",
                Kind::Str("HOST"),
                "our name in the banner, EHLO, Received headers",
            ),
            k(
                "data_dir",
                Kind::Str("DIR"),
                "queue, control socket, certificates (fixed while running)",
            ),
        ],
    },
    Section {
        name: "domain",
        shape: Shape::Array {
            id: "name",
            placeholder: "DOMAIN",
        },
        help: "a domain we accept mail for",
        keys: &[
            k(
                "next_hops",
                Kind::List("HOST[:PORT]|mx"),
                "ordered next hops",
            ),
            k(
                "tls",
                TLS_POLICY,
                "TLS towards the next hops (default delivery.tls)",
            ),
            k(
                "role",
                Kind::Enum(&["primary", "secondary"]),
                "primary or secondary MX for the domain",
            ),
        ],
    },
    Section {
        name: "listener",
        shape: Shape::Array {
            id: "address",
            placeholder: "IP:PORT",
        },
        help: "an SMTP listening address",
        keys: &[
            k("starttls", Kind::Bool, "offer STARTTLS (default true)"),
            k(
                "role",
                Kind::Enum(&["mx", "submission"]),
                "mx (port 25) or submission",
            ),
        ],
    },
    Section {
        name: "network",
        shape: Shape::Table,
        help: "the appliance's own network (applied by init)",
        keys: &[
            k(
                "interface",
                Kind::Str("NAME"),
                "auto, or a kernel name such as eth1",
            ),
            k(
                "mode",
                Kind::Enum(&["dhcp", "static"]),
                "DHCP or a static address",
            ),
            k(
                "address",
                Kind::Str("A.B.C.D/N"),
                "static address with prefix length",
            ),
            k("gateway", Kind::Str("A.B.C.D"), "default gateway"),
            k("dns", Kind::List("A.B.C.D"), "DNS servers"),
        ],
    },
    Section {
        name: "relay",
        shape: Shape::Table,
        help: "who may relay to domains we do not serve",
        keys: &[k(
            "networks",
            Kind::List("CIDR"),
            "client networks allowed to relay",
        )],
    },
    Section {
        name: "limits",
        shape: Shape::Table,
        help: "per-session and global limits",
        keys: &[
            k("max_message_size", Kind::Size, "largest message (SIZE)"),
            k("max_line_length", Kind::Int, "longest command line"),
            k("max_recipients", Kind::Int, "recipients per message"),
            k("max_errors", Kind::Int, "failed commands before 421"),
            k("max_commands", Kind::Int, "commands per session"),
            k(
                "max_messages_per_session",
                Kind::Int,
                "messages per session",
            ),
            k("max_connections", Kind::Int, "sessions in total"),
            k(
                "max_connections_per_ip",
                Kind::Int,
                "sessions per client address",
            ),
            k("command_timeout", Kind::Span, "whole command line"),
            k("data_timeout", Kind::Span, "wait between reads in DATA"),
            k("min_data_rate", Kind::Size, "bytes/s kept up in DATA/BDAT"),
            k(
                "stress_threshold",
                Kind::Float,
                "share of max_connections: stress",
            ),
            k("stress_timeout", Kind::Span, "timeouts under stress"),
            k(
                "inflight_bytes",
                Kind::Size,
                "message bytes held by all sessions",
            ),
            k(
                "line_endings",
                Kind::Enum(&["reject", "normalize"]),
                "bare CR/LF in DATA",
            ),
            k(
                "long_lines",
                Kind::Enum(&["reject", "fold"]),
                "lines over 998 octets",
            ),
            k(
                "shutdown_timeout",
                Kind::Span,
                "time given to sessions at shutdown",
            ),
        ],
    },
    Section {
        name: "tls",
        shape: Shape::Table,
        help: "the certificate presented to clients",
        keys: &[
            k("certificate", Kind::Str("PATH"), "PEM certificate chain"),
            k("private_key", Kind::Str("PATH"), "PEM private key"),
        ],
    },
    Section {
        name: "queue",
        shape: Shape::Table,
        help: "queue size and retry schedule",
        keys: &[
            k("max_messages", Kind::Int, "messages held at most"),
            k("max_bytes", Kind::Size, "bytes held at most"),
            k(
                "min_free_space",
                Kind::Size,
                "free space kept on the data partition",
            ),
            k(
                "retry_intervals",
                Kind::List("DURATION"),
                "waits between attempts",
            ),
            k("retry_jitter", Kind::Float, "random spread, 0 to 0.5"),
            k("max_lifetime", Kind::Span, "then undelivered mail bounces"),
            k("max_batch", Kind::Int, "changes per commit"),
        ],
    },
    Section {
        name: "delivery",
        shape: Shape::Table,
        help: "delivery to next hops",
        keys: &[
            k("tls", TLS_POLICY, "default TLS policy"),
            k(
                "default_next_hops",
                Kind::List("HOST[:PORT]|mx"),
                "for domains we do not serve",
            ),
            k("connect_timeout", Kind::Span, "TCP connect"),
            k("command_timeout", Kind::Span, "per command reply"),
            k("data_timeout", Kind::Span, "reply to the end of data"),
            k(
                "max_connections_per_next_hop",
                Kind::Int,
                "connections per next hop",
            ),
            k("max_messages_per_connection", Kind::Int, "connection reuse"),
            k("idle_timeout", Kind::Span, "idle connection kept this long"),
            k("max_concurrent", Kind::Int, "deliveries in flight"),
        ],
    },
    Section {
        name: "dns",
        shape: Shape::Table,
        help: "resolvers used for next hops and MX",
        keys: &[
            k(
                "nameservers",
                Kind::List("IP:PORT"),
                "empty: /etc/resolv.conf",
            ),
            k("timeout", Kind::Span, "per query"),
        ],
    },
    Section {
        name: "log",
        shape: Shape::Table,
        help: "logging",
        keys: &[
            k(
                "level",
                Kind::Enum(&["error", "warn", "info", "debug", "trace"]),
                "least severe level shown",
            ),
            k(
                "target",
                Kind::Enum(&["auto", "journald", "stderr"]),
                "where log lines go",
            ),
        ],
    },
    Section {
        name: "boot",
        shape: Shape::Table,
        help: "trial boots and the health watchdog (applied by init at boot)",
        keys: &[
            k(
                "healthy_for",
                Kind::Span,
                "healthy this long: the booted firmware is committed",
            ),
            k(
                "trial_deadline",
                Kind::Span,
                "a trial not healthy by then fails; back to the old slot",
            ),
            k(
                "unhealthy_reboot_after",
                Kind::Span,
                "reboot when the gateway stays unhealthy this long",
            ),
            k(
                "max_unhealthy_reboots",
                Kind::Int,
                "then stay up for the operator (counted on gw-data)",
            ),
        ],
    },
];

pub fn section(name: &str) -> Option<&'static Section> {
    SECTIONS
        .iter()
        .find(|s| !s.name.is_empty() && s.name == name)
}

pub fn top_key(name: &str) -> Option<&'static Key> {
    SECTIONS[0].keys.iter().find(|k| k.name == name)
}

impl Section {
    pub fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }
}

impl Kind {
    /// How the value is written, for `?` help.
    pub fn placeholder(&self) -> String {
        match self {
            Kind::Str(p) => format!("<{p}>"),
            Kind::List(p) => format!("<{p}> ..."),
            Kind::Int => "<NUMBER>".into(),
            Kind::Float => "<DECIMAL>".into(),
            Kind::Bool => "true|false".into(),
            Kind::Enum(choices) => choices.join("|"),
            Kind::Size => "<BYTES, e.g. 25MiB>".into(),
            Kind::Span => "<DURATION, e.g. 30s, 5m>".into(),
        }
    }
}
