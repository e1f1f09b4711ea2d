//! Where symbols come from, and the order they are tried in: local stores, binaries and
//! `.sym` files first, then symbol servers, whose answers land in a cache that is then read
//! as one more store. What the `--symbols` options of the command-line tool name, for any
//! program that resolves profiles (a service resolving a fleet's profiles, say).

use std::path::PathBuf;

use super::remote::{self, Server};
use super::{resolve, Resolution, SymbolStore, ToolError};
use crate::{Module, Profile};

/// Symbol sources: local ones, then servers into a cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolSources {
    /// Symbol stores, binaries or `.sym` files, in order.
    pub local: Vec<PathBuf>,
    /// Symbol servers, in order: the first that has a module's symbols wins.
    pub servers: Vec<Server>,
    /// Where what servers give is kept (a store; misses are remembered for a day).
    pub cache: PathBuf,
}

/// What [`SymbolSources::resolve`] is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// `done` of `of` modules' symbols fetched from servers (or given up on).
    Fetching {
        /// Modules finished.
        done: usize,
        /// Modules to fetch.
        of: usize,
    },
    /// Fetching is over (or there was none); resolving this many frames.
    Resolving {
        /// The profile's distinct frames.
        frames: usize,
    },
    /// Done.
    Done,
}

impl SymbolSources {
    /// The sources `values` name, as `--symbols` takes them (`http://` or `https://` a
    /// Breakpad store, `debuginfod:<url>` a debuginfod server, anything else a local path),
    /// then the debuginfod servers `debuginfod_urls` lists (`DEBUGINFOD_URLS`'s form), the
    /// cache in `cache` or, if `None`, [`remote::default_cache`].
    pub fn parse(values: &[String], debuginfod_urls: Option<&str>, cache: Option<PathBuf>) -> Self {
        let mut sources = SymbolSources {
            cache: cache.unwrap_or_else(remote::default_cache),
            ..SymbolSources::default()
        };
        for v in values {
            match Server::parse(v) {
                Some(server) => sources.servers.push(server),
                None => sources.local.push(PathBuf::from(v)),
            }
        }
        sources
            .servers
            .extend(debuginfod_urls.map_or_else(Vec::new, Server::from_debuginfod_urls));
        sources
    }

    /// Resolves `profile`: the modules its samples use that no local source has are fetched
    /// from the servers into the cache first, and the cache is read after the local sources.
    /// A module nobody has costs only its frames, with a warning (servers' failures
    /// included).
    pub fn resolve(
        &self,
        profile: &Profile,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Resolution, ToolError> {
        let mut local = self.local.clone();
        let mut warnings = Vec::new();
        if !self.servers.is_empty() {
            let missing = self.missing_locally(profile);
            warnings = remote::fetch(&missing, &self.servers, &self.cache, &|done, of| {
                progress(Progress::Fetching { done, of })
            });
            local.push(self.cache.clone());
        }
        progress(Progress::Resolving {
            frames: profile.frames.len(),
        });
        let res = resolve(profile, &mut SymbolStore::new(&local));
        progress(Progress::Done);
        let mut res = res?;
        for w in warnings.into_iter().rev() {
            res.warnings.insert(0, w);
        }
        Ok(res)
    }

    /// The modules `profile`'s samples use that the local sources lack.
    fn missing_locally<'p>(&self, profile: &'p Profile) -> Vec<&'p Module> {
        let mut used = vec![false; profile.modules.len()];
        for f in &profile.frames {
            if let Some(u) = (f.module as usize)
                .checked_sub(1)
                .and_then(|m| used.get_mut(m))
            {
                *u = true;
            }
        }
        let mut store = SymbolStore::new(&self.local);
        (profile.modules.iter().zip(&used))
            .filter(|(m, &u)| u && store.find(&m.debug_file, &m.debug_id_string()).is_none())
            .map(|(m, _)| m)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_split_into_local_ones_and_servers_in_order() {
        let values = [
            "syms",
            "https://a.example/s/",
            "debuginfod:http://d.example",
            "b.sym",
        ];
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let s = SymbolSources::parse(&values, Some("http://e.example/ "), Some("c".into()));
        assert_eq!(s.local, [PathBuf::from("syms"), PathBuf::from("b.sym")]);
        assert_eq!(
            s.servers,
            [
                Server::Breakpad("https://a.example/s".into()),
                Server::Debuginfod("http://d.example".into()),
                Server::Debuginfod("http://e.example".into()),
            ]
        );
        assert_eq!(s.cache, PathBuf::from("c"));
    }

    #[test]
    fn every_format_and_order_is_read_back_from_its_name() {
        for f in super::super::Format::ALL {
            assert_eq!(f.name().parse(), Ok(f));
        }
        for o in super::super::report::Sort::ALL {
            assert_eq!(o.name().parse(), Ok(o));
        }
        assert!("speedscope ".parse::<super::super::Format>().is_err());
    }
}
