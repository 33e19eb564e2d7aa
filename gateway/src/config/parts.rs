//! The parts of `edgemx.toml` that init reads itself: `hostname`, `data_dir`, `[network]`,
//! the `[[listener]]` addresses and `[limits]` (for the shutdown deadline), typed with the
//! configuration's own types.
//!
//! Each part is read on its own, not through [`super::Config::parse`]: a mistake elsewhere
//! in the file keeps the gateway from starting, and must not also take the appliance off
//! the network (the operator's way in to fix it) or the console off its control socket.
//! Only the shape of a part is checked here; what `Config::parse` checks beyond it
//! (`network::check`) is the caller's to apply where it acts.

use super::{Limits, Listener, Network};
use std::path::PathBuf;

/// `edgemx.toml` as TOML, read part by part.
pub struct Parts(toml::Table);

impl Parts {
    /// Fails only when the text is not TOML at all.
    pub fn parse(text: &str) -> Result<Parts, toml::de::Error> {
        text.parse().map(Parts)
    }

    pub fn hostname(&self) -> Option<String> {
        self.part("hostname")?.ok()
    }

    pub fn data_dir(&self) -> Option<PathBuf> {
        self.part("data_dir")?.ok()
    }

    /// `[network]`, or why it does not have the shape of [`Network`]; `None` when absent.
    pub fn network(&self) -> Option<Result<Network, toml::de::Error>> {
        self.part("network")
    }

    /// `[limits]`, defaults filled in; the defaults when absent or not of its shape.
    pub fn limits(&self) -> Limits {
        self.part("limits").and_then(Result::ok).unwrap_or_default()
    }

    /// The `[[listener]]` entries that have the shape of a [`Listener`].
    pub fn listeners(&self) -> Vec<Listener> {
        let entries: Vec<toml::Value> = self
            .part("listener")
            .and_then(Result::ok)
            .unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|entry| entry.try_into().ok())
            .collect()
    }

    fn part<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Option<Result<T, toml::de::Error>> {
        self.0.get(key).map(|value| value.clone().try_into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetMode;

    #[test]
    fn each_part_reads_on_its_own() {
        let parts = Parts::parse(
            "hostname = \"mx.test\"\ndata_dir = \"/data/x\"\nbogus = 1\n\
             [[listener]]\naddress = \"0.0.0.0:25\"\n[[listener]]\naddress = \"nope\"\n\
             [[listener]]\naddress = \"[::]:587\"\nrole = \"submission\"\n\
             [network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\n\
             [route]\nthis = \"is not a route\"\n",
        )
        .unwrap();
        assert_eq!(parts.hostname().as_deref(), Some("mx.test"));
        assert_eq!(parts.data_dir(), Some(PathBuf::from("/data/x")));
        let ports: Vec<u16> = parts.listeners().iter().map(|l| l.address.port()).collect();
        assert_eq!(ports, [25, 587]);
        let network = parts.network().unwrap().unwrap();
        assert_eq!(network.mode, NetMode::Static);
        assert_eq!(network.address.as_deref(), Some("192.0.2.10/24"));
    }

    #[test]
    fn a_part_of_the_wrong_shape_is_an_error_and_an_absent_one_is_none() {
        let parts = Parts::parse("hostname = 7\n[network]\nadress = \"192.0.2.10/24\"\n").unwrap();
        assert_eq!(parts.hostname(), None);
        let e = parts.network().unwrap().unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
        let empty = Parts::parse("").unwrap();
        assert!(empty.network().is_none());
        assert!(empty.listeners().is_empty());
        assert!(Parts::parse("[network").is_err());
    }
}
