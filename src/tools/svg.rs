//! An SVG flame graph (inferno, the Rust port of Brendan Gregg's FlameGraph).

use super::collapsed::to_collapsed;
use super::resolve::Resolution;
use super::ToolError;
use crate::Profile;

/// Renders `profile` as an SVG flame graph titled `title` (threads are the first level).
pub fn to_svg(profile: &Profile, res: &Resolution, title: &str) -> Result<Vec<u8>, ToolError> {
    let collapsed = to_collapsed(profile, res);
    let mut options = inferno::flamegraph::Options::default();
    options.title = super::escape_controls(title).into_owned();
    options.count_name = "samples".to_string();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, collapsed.lines(), &mut svg)
        .map_err(|e| ToolError::Io(format!("rendering the flame graph: {e}")))?;
    Ok(svg)
}
