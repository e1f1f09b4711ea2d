//! Resolving a profile's frames to functions, files, lines and inline frames.

use std::collections::BTreeSet;

use super::store::SymbolStore;
use super::sym_file::Location;
use super::ToolError;
use crate::Profile;

/// Every frame of a profile, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Per profile frame: its (inline) frames, innermost first; never empty. A frame without
    /// symbols reads `module+0xoffset`.
    pub frames: Vec<Vec<Location>>,
    /// Modules (name, debug id) that had frames but no symbols.
    pub missing: Vec<(String, String)>,
}

impl Resolution {
    /// The locations of stack node `node`, outermost (root) first, inline frames expanded.
    pub fn stack<'a>(&'a self, profile: &Profile, node: u32) -> Vec<&'a Location> {
        let mut out = Vec::new();
        let mut next = Some(node);
        while let Some(n) = next.and_then(|n| profile.stacks.get(n as usize)) {
            if let Some(frames) = self.frames.get(n.frame as usize) {
                out.extend(frames.iter());
            }
            next = n.parent.checked_sub(1);
        }
        out.reverse();
        out
    }
}

/// Resolves every frame of `profile` with the symbols in `store`. Frames of modules without
/// symbols keep a readable `module+0xoffset` name; no frame or sample is dropped.
pub fn resolve(profile: &Profile, store: &mut SymbolStore) -> Result<Resolution, ToolError> {
    let mut missing = BTreeSet::new();
    let mut tables = Vec::with_capacity(profile.modules.len());
    for m in &profile.modules {
        tables.push(store.find(&m.name, &m.debug_id_string())?);
    }
    let frames = profile
        .frames
        .iter()
        .map(|f| {
            let Some(m) = f
                .module
                .checked_sub(1)
                .and_then(|m| profile.modules.get(m as usize))
            else {
                return vec![Location {
                    function: format!("{:#x}", f.address),
                    file: None,
                    line: 0,
                }];
            };
            let table = tables.get(f.module as usize - 1).and_then(|t| t.as_ref());
            let found = table.map(|t| t.lookup(f.address)).unwrap_or_default();
            if found.is_empty() {
                if table.is_none() {
                    missing.insert((m.name.clone(), m.debug_id_string()));
                }
                vec![Location {
                    function: format!("{}+{:#x}", m.name, f.address),
                    file: None,
                    line: 0,
                }]
            } else {
                found
            }
        })
        .collect();
    Ok(Resolution {
        frames,
        missing: missing.into_iter().collect(),
    })
}
